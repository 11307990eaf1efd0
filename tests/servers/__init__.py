"""Engine servers and their set-up scripts, run by the engines' own virtualenvs (not collected)."""
