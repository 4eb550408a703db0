"""Test doubles shipped on purpose, as click ships click.testing.

A fake pigpiod speaking pigpio's socket protocol, a private chronyd harness
(``-x``, its own config and sockets) and the demo built on them.
"""
