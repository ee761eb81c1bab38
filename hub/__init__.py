"""hub: a contact integration hub.

Pulls contacts from every tool, normalizes them, dedupes them into one canonical
store, pushes the merged truth back and logs every change.
"""

__version__ = "0.1.0"
