"""Device identity at the broker: per-device and per-service MQTT credentials, and the broker's files made from them."""
