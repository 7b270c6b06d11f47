"""Qt models of the window: the queue tree, the history pages and their filter."""
