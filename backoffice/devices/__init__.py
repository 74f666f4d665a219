"""Telematics devices and which vehicle each is installed in."""
