"""Administration / HR: staff users and departments."""
