"""The desktop: PySide6 widgets on a qasync event loop.

The only package that imports Qt. Widgets render kernel state and send user intents down;
kernel events reach them through :mod:`llmos.desktop.bridge`.
"""
