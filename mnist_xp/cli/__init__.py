"""The command-line faces of the library: argument parsing and printing only.

Each module here is one command (``python -m mnist_xp.NAME``); ``common`` holds what they share.
Nothing in the library imports from this package.
"""
