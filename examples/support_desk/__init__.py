"""A simulated support desk, its toolkit, a gullible scripted model and its charter."""
