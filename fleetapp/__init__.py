"""The composition root: the `fleet` CLI, the demo, the API assembly, the scheduler job list and seeding."""
