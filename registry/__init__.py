"""The experiment registry (data, not code); a package only so the wheel can carry it."""
