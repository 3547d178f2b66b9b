"""Long synthetic conversations: facts planted early, small talk, questions about the facts
late. Used by the pager's tests and by ``benchmarks/paging_bench.py``."""

from __future__ import annotations

import random

# (fact, question) templates; {0} and {1} are filled per conversation.
FACTS = [
    ("The combination of my {0} lock is {1}.", "What is the combination of my {0} lock?"),
    ("My {0} appointment is on {1}.", "When is my {0} appointment?"),
    ("I parked the {0} car on level {1}.", "On which level did I park the {0} car?"),
    ("The wifi password at the {0} house is {1}.", "What is the wifi password at the {0} house?"),
    ("My {0} teacher is called {1}.", "What is my {0} teacher called?"),
    ("The {0} project deadline is {1}.", "When is the {0} project deadline?"),
    ("I keep the {0} keys in the {1}.", "Where do I keep the {0} keys?"),
    ("My favourite {0} recipe uses {1}.", "What does my favourite {0} recipe use?"),
]
SUBJECTS = [
    "bike", "dentist", "blue", "beach", "piano", "garden", "office", "soup", "gym", "lake",
    "violin", "harbour", "red", "cabin", "chemistry", "bakery", "studio", "curry", "tennis",
    "river", "yoga", "market", "green", "library",
]  # fmt: skip
VALUES = [
    "3921", "Tuesday the 14th", "7", "otter-42-lamp", "Mrs Okafor", "March 3rd", "blue drawer",
    "smoked paprika", "8830", "Friday at noon", "B2", "kestrel99", "Mr Lindqvist", "June 9th",
    "hall cupboard", "fresh ginger",
]  # fmt: skip
SMALL_TALK = [
    "We talked about putting a new lock on the shed door and what colour to paint it.",
    "The weather was lovely today, so I took a long walk by the water.",
    "Can you suggest a book about the history of maps and navigation?",
    "I am thinking about learning to bake bread at home this winter.",
    "My neighbour has a password manager and keeps recommending it.",
    "How do I keep houseplants alive when the flat gets little light?",
    "I watched a documentary about teachers in rural schools last night.",
    "What is a good way to plan a week of meals on a budget?",
    "The car needed new tyres, which took most of the morning.",
    "Tell me a fun fact about octopuses.",
    "I would like to get better at keeping a regular sleep schedule.",
    "Our project meeting ran long again; everyone had a different idea.",
    "Explain how a heat pump works in simple terms.",
    "I found an old recipe book in the attic with handwritten notes.",
    "Which stretches help after sitting at a desk all day?",
    "The keys on my laptop are starting to wear out.",
]


def conversation(rng: random.Random, turns: int) -> tuple[list[str], list[tuple[int, str]]]:
    """(the user's turns, [(question turn, fact text)])."""
    chosen = rng.sample(FACTS, len(FACTS))
    subjects = rng.sample(SUBJECTS, len(chosen))
    values = rng.sample(VALUES, len(chosen))
    facts = [f.format(s, v) for (f, _), s, v in zip(chosen, subjects, values, strict=True)]
    questions = [q.format(s) for (_, q), s in zip(chosen, subjects, strict=True)]
    texts = [rng.choice(SMALL_TALK) for _ in range(turns)]
    fact_turns = sorted(rng.sample(range(1, 21), len(facts)))
    question_turns = sorted(rng.sample(range(turns - 60, turns), len(questions)))
    asked = []
    for turn, fact in zip(fact_turns, facts, strict=True):
        texts[turn] = f"By the way, remember this: {fact}"
    for turn, question, fact in zip(question_turns, questions, facts, strict=True):
        texts[turn] = question
        asked.append((turn, fact))
    return texts, asked
