"""The Textual app and its widgets: the only place textual and plotext may be imported."""
