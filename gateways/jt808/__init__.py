"""JT/T 808 (China's national standard for road transport vehicle terminals, 2013 and 2019 editions).

codec: framing (0x7E, 0x7D escapes, XOR check code), the message header (BCD phone number, 2019 version flag,
subpackages) and the message bodies both ways; location: 0x0200/0x0704 reports → contract samples and events
(pure); terminals: the registry and issued authentication codes in PostgreSQL; server: the asyncio TCP gateway.
"""
