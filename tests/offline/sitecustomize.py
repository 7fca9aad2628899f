"""Loaded by every Python process of the offline test (PYTHONPATH): refuse every non-loopback connection,
and every file opened beside the checkout (a newcomer's clone has no data folder next to it).

The Jupyter kernel talks to papermill over loopback TCP, which stays allowed; each refused address or
path is appended to $GEONB_REFUSED_LOG so the test can say what was tried. $GEONB_CHECKOUT names the
checkout: a path in its parent folder but outside it (a data folder beside the clone, say) cannot be opened.
"""
import errno
import ipaddress
import os
import socket
import sys

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


_checkout = os.environ.get("GEONB_CHECKOUT")
# beside the checkout, still readable: Python itself, and the temporary folder when the checkout lies
# directly in it (/tmp/geonb: tests write there); a clone in /tmp/x/geonb still has /tmp/x/* refused
_tmp = os.path.realpath(__import__("tempfile").gettempdir())
_allowed = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)}
if _checkout and os.path.dirname(os.path.realpath(_checkout)) == _tmp:
    _allowed.add(_tmp)


def _under(path, root) -> bool:
    return os.path.commonpath([path, root]) == root


def _beside_checkout(event, args):
    if event != "open" or not _checkout or not isinstance(args[0], (str, bytes, os.PathLike)):
        return
    path, parent = os.path.abspath(os.fsdecode(args[0])), os.path.dirname(_checkout)
    if parent != "/" and _under(path, parent) and path != parent and not _under(path, _checkout) \
            and not any(_under(path, root) for root in _allowed):
        _log(path)
        raise PermissionError(errno.EACCES, f"read beside the checkout refused by the geonb offline test: {path}")


sys.addaudithook(_beside_checkout)
