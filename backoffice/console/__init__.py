"""The dispatcher console: its page (/console) and the reads it aggregates from the other domains."""
