"""``python -m convkit bench``: convkit's algorithms side by side with their peers."""
