"""Training: courses, sessions, attendance and certifications (which maintenance tasks a technician may close)."""
