"""Administration: office supplies, facility upkeep requests, rooms, meetings and events."""
