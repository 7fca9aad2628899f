"""Loaded by every Python process of the offline test (PYTHONPATH): refuse every non-loopback connection.

The Jupyter kernel talks to papermill over loopback TCP, which stays allowed; each refused address is
appended to $GEONB_REFUSED_LOG so the test can say what was tried.
"""
import errno
import ipaddress
import os
import socket

_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex


def _refused(sock, address) -> bool:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False  # unix sockets
    try:
        return not ipaddress.ip_address(address[0]).is_loopback
    except ValueError:
        return address[0] != "localhost"


def _log(address):
    with open(os.environ.get("GEONB_REFUSED_LOG", os.devnull), "a") as log:
        log.write(f"{address}\n")


def connect(self, address):
    if _refused(self, address):
        _log(address)
        raise OSError(errno.ENETUNREACH, f"network refused by the geonb offline test: {address}")
    return _connect(self, address)


def connect_ex(self, address):
    if _refused(self, address):
        _log(address)
        return errno.ENETUNREACH
    return _connect_ex(self, address)


socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
