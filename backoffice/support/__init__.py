"""Customer service: knowledge base, phrases, cases and complaints with evidence, SLA, care and campaigns."""
