"""A person's rights over their data (GDPR arts. 15, 17, 20; PIPL arts. 45, 47): export and erasure, across domains."""
