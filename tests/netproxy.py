"""A TCP proxy on loopback that a test can cut, hang and restore: the database "goes away" and comes
back exactly as it does when a network link or a server drops, with the real server behind it.

Two kinds of outage:

- ``cut()``: refused. New connections are refused and every open one is dropped, as when the server
  or the host is down: clients fail at once.
- ``hang()``: silent. A network that drops packets: every connection, open or new, stays open, but no
  byte gets through in either direction, so clients wait until a timeout of theirs gives up.

``hold_answers()`` is a hang in one direction: requests get through, answers wait, as when a link fails after
the request went out. ``restore()`` ends any of them. After a hang, open connections carry on (what was sent meanwhile arrives
then, as TCP would retransmit it), and connections accepted during the hang are put through to the
server only now; a client that gave up on one meanwhile has closed it, so it just goes away.

Unlike a real dead link, the proxy's own kernel still acknowledges what it receives, so a hang here
cannot trip the client's TCP keepalives or ``tcp_user_timeout``: only timeouts the client keeps itself
(``connect_timeout``) show up against it.
"""

from __future__ import annotations

import socket
import threading


class Proxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: set[socket.socket] = set()
        self._held: list[socket.socket] = []  # accepted during a hang, not yet put through
        self._lock = threading.Lock()
        self._serving = True
        self._flowing = threading.Event()  # cleared while hanging
        self._flowing.set()
        self._answering = threading.Event()  # cleared while hanging or holding answers
        self._answering.set()
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and drop every open one."""
        with self._lock:
            self._serving = False
            self._listener.close()
            for sock in (*self._sockets, *self._held):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._sockets.clear()
            self._held.clear()

    def hang(self) -> None:
        """Go silent, as a network that drops packets: connections (open ones and new ones) stay open
        but no byte is forwarded either way until ``restore()``."""
        with self._lock:
            self._flowing.clear()
            self._answering.clear()

    def hold_answers(self) -> None:
        """Forward what clients send, but hold back what the server answers until ``restore()``."""
        self._answering.clear()

    def restore(self) -> None:
        """End a cut (listen again) or a hang (forward again, and put through what was accepted)."""
        with self._lock:
            self._flowing.set()
            self._answering.set()
            held, self._held = self._held, []
            reopen = not self._serving
            if reopen:
                self._listener = socket.create_server(("127.0.0.1", self.port))
                self._serving = True
        if reopen:
            threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()
        for client in held:
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def close(self) -> None:
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed by cut()
            with self._lock:
                if not self._flowing.is_set():  # hanging: hold it, read nothing, answer nothing
                    self._held.append(client)
                    continue
            self._serve(client)

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)  # the connect timeout must not become a read timeout
        with self._lock:
            if not self._serving:
                client.close()
                upstream.close()
                return
            self._sockets.update((client, upstream))
        for source, sink, flowing in ((client, upstream, self._flowing), (upstream, client, self._answering)):
            threading.Thread(target=self._pipe, args=(source, sink, flowing), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, flowing: threading.Event) -> None:
        try:
            while data := source.recv(65536):
                while not flowing.wait(0.1):  # hanging: hold the data back
                    if sink.fileno() < 0:
                        return  # dropped by cut() meanwhile
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.close()
                except OSError:
                    pass
