"""Real media servers for the publishing tests, started on loopback with configs of their own:
Janus (the SFU) behind simple-whip-server (WHIP), and nginx with the RTMP module.

`.ci/publish-servers` installs them (see ../shared/notes/webrtc-testing.md); each `*_missing()`
says why a test must skip where they are not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

JANUS_LIB = Path("/usr/lib/x86_64-linux-gnu/janus")
JANUS_JS = Path("/usr/share/javascript/janus-gateway/janus.js")
ADAPTER_JS = Path("/usr/share/javascript/webrtc-adapter/adapter.js")
RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
WHIP_DIR = Path(os.environ.get("DANCENOW_WHIP_SERVER", Path.home() / ".cache/dancenow/simple-whip-server"))
INSTALL = "run .ci/publish-servers as root"
VETH = ("dnpub0", "dnpub1")
VETH_ADDR = "10.253.0.1/24"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def janus_missing() -> str | None:
    if shutil.which("janus") is None or not (JANUS_LIB / "plugins/libjanus_videoroom.so").is_file():
        return f"Janus is not installed (apt-get install janus; {INSTALL})"
    if shutil.which("node") is None:
        return f"node is not installed: simple-whip-server needs it ({INSTALL})"
    if not (WHIP_DIR / "src/server.js").is_file() or not (WHIP_DIR / "node_modules/websocket").is_dir():
        return f"simple-whip-server is not in {WHIP_DIR} ({INSTALL})"
    if not JANUS_JS.is_file() or not ADAPTER_JS.is_file():
        return f"janus.js or adapter.js missing (apt-get install libjs-janus-gateway libjs-webrtc-adapter; {INSTALL})"
    return None


def nginx_rtmp_missing() -> str | None:
    if shutil.which("nginx") is None or not RTMP_MODULE.is_file():
        return f"nginx with the RTMP module is not installed (apt-get install nginx-light libnginx-mod-rtmp; {INSTALL})"
    return None


def give_janus_an_address() -> tuple[str | None, list[str]]:
    """Janus gathers no ICE candidate on a loopback interface, and a test namespace has only `lo`:
    add a veth pair there (an address of this namespace only; the traffic still never leaves it).
    Returns (why it cannot, or None; the command that undoes it)."""
    names = [name for _, name in socket.if_nameindex()]
    if any(name != "lo" for name in names):
        return None, []  # the machine's own interfaces (or ours, from before)
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return ("Janus needs a non-loopback address and this network namespace has only lo "
                "(run as root to let the test add a veth pair)"), []
    for cmd in (["ip", "link", "add", VETH[0], "type", "veth", "peer", "name", VETH[1]],
                ["ip", "addr", "add", VETH_ADDR, "dev", VETH[0]],
                ["ip", "link", "set", VETH[0], "up"], ["ip", "link", "set", VETH[1], "up"]):
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            subprocess.run(["ip", "link", "del", VETH[0]], capture_output=True)
            return f"cannot add a veth pair for Janus ({' '.join(cmd)}: {done.stderr.strip()})", []
    return None, ["ip", "link", "del", VETH[0]]


class Process:
    """A server process with its log in `root`, ended with SIGTERM (SIGKILL after 5 s)."""

    def __init__(self, name: str, root: Path) -> None:
        self.name, self.root = name, root
        self.proc: subprocess.Popen | None = None

    def spawn(self, args: list[str], env: dict | None = None, cwd: Path | None = None) -> None:
        log = open(self.root / f"{self.name}.log", "ab")  # noqa: SIM115 (the child keeps it)
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                     start_new_session=True)
        log.close()

    def kill(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def log(self) -> str:
        path = self.root / f"{self.name}.log"
        return path.read_text(errors="replace")[-3000:] if path.is_file() else ""


class Janus(Process):
    """Janus with only the VideoRoom plugin and the HTTP and WebSocket transports, on loopback,
    one room (`room`, VP8) declared in its config (so it is there again after a restart)."""

    def __init__(self, root: Path, room: int = 4242) -> None:
        super().__init__("janus", root)
        self.room = room
        self.http_port, self.ws_port = free_port(), free_port()
        conf = root / "janus"
        for sub in ("plugins", "transports", "none"):
            (conf / sub).mkdir(parents=True, exist_ok=True)
        for sub, lib in (("plugins", "libjanus_videoroom.so"), ("transports", "libjanus_http.so"),
                         ("transports", "libjanus_websockets.so")):
            link = conf / sub / lib
            if not link.exists():
                link.symlink_to(JANUS_LIB / sub / lib)
        base = 20000 + (self.http_port % 20) * 1000
        (conf / "janus.jcfg").write_text(
            f'general: {{ configs_folder = "{conf}" plugins_folder = "{conf}/plugins" '
            f'transports_folder = "{conf}/transports" events_folder = "{conf}/none" '
            f'loggers_folder = "{conf}/none" debug_level = 4 }}\n'
            f'media: {{ rtp_port_range = "{base}-{base + 999}" }}\n'
            )
        (conf / "janus.transport.http.jcfg").write_text(
            f'general: {{ base_path = "/janus" http = true port = {self.http_port} ip = "127.0.0.1" https = false }}\n'
            'admin: { admin_http = false }\n')
        (conf / "janus.transport.websockets.jcfg").write_text(
            f'general: {{ ws = true ws_port = {self.ws_port} ws_ip = "127.0.0.1" wss = false }}\n'
            'admin: { admin_ws = false }\n')
        (conf / "janus.plugin.videoroom.jcfg").write_text(
            f'general: {{ }}\nroom-{room}: {{ description = "dancenow test" publishers = 4 bitrate = 2000000 '
            'fir_freq = 0 videocodec = "vp8" }\n')
        self.conf = conf

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/janus"

    def start(self) -> Janus:
        self.spawn(["janus", "-F", str(self.conf), "-o"])
        wait_port(self.http_port, 20, "janus", self.proc)
        wait_port(self.ws_port, 20, "janus (websockets)", self.proc)
        return self

    def publishers(self) -> list[dict]:
        """The room's participants that publish (Janus's HTTP API: session, attach, listparticipants)."""
        session = _post(self.api, {"janus": "create", "transaction": "s"})["data"]["id"]
        try:
            handle = _post(f"{self.api}/{session}", {"janus": "attach", "plugin": "janus.plugin.videoroom",
                                                     "transaction": "a"})["data"]["id"]
            reply = _post(f"{self.api}/{session}/{handle}", {"janus": "message", "transaction": "l",
                                                             "body": {"request": "listparticipants", "room": self.room}})
            return [p for p in reply["plugindata"]["data"].get("participants", []) if p.get("publisher")]
        finally:
            _post(f"{self.api}/{session}", {"janus": "destroy", "transaction": "d"})


class WhipServer(Process):
    """simple-whip-server (its own copy of the source, a config with our ports) in front of `janus`."""

    def __init__(self, root: Path, janus: Janus) -> None:
        super().__init__("whip", root)
        self.janus = janus
        self.port = free_port()
        self.dir = root / "whip"
        shutil.copytree(WHIP_DIR / "src", self.dir / "src", dirs_exist_ok=True)
        (self.dir / "src/config.js").write_text(
            f"module.exports = {{ janus: {{ address: 'ws://127.0.0.1:{janus.ws_port}' }}, port: {self.port}, "
            "rest: '/whip', allowTrickle: true, strictETags: false, iceServers: [] };\n")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/whip"

    def start(self) -> WhipServer:
        env = {**os.environ, "NODE_PATH": str(WHIP_DIR / "node_modules"), "DEBUG": "whip:*"}
        self.spawn(["node", "src/server.js"], env=env, cwd=self.dir)
        wait_port(self.port, 20, "simple-whip-server", self.proc)
        return self

    def create_endpoint(self, endpoint: str, token: str | None = None) -> str:
        """A WHIP endpoint publishing into the Janus room; returns its URL."""
        body = {"id": endpoint, "room": self.janus.room, **({"token": token} if token else {})}
        req = urllib.request.Request(f"{self.base}/create", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200
        return f"{self.base}/endpoint/{endpoint}"

    def endpoints(self) -> list[dict]:
        with urllib.request.urlopen(f"{self.base}/endpoints", timeout=10) as r:
            return json.loads(r.read())


class NginxRtmp(Process):
    """nginx (one process, no daemon) with an RTMP `live` application on a loopback port."""

    def __init__(self, root: Path) -> None:
        super().__init__("nginx", root)
        self.port = free_port()
        self.prefix = root / "nginx"
        (self.prefix / "logs").mkdir(parents=True, exist_ok=True)
        self.conf = self.prefix / "nginx.conf"
        self.conf.write_text(
            f"load_module {RTMP_MODULE};\ndaemon off;\nmaster_process off;\npid {self.prefix}/nginx.pid;\n"
            f"error_log {self.prefix}/logs/error.log info;\nevents {{ worker_connections 64; }}\n"
            f"rtmp {{ server {{ listen 127.0.0.1:{self.port}; application live {{ live on; record off; }} }} }}\n")

    def url(self, key: str) -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{key}"

    def start(self) -> NginxRtmp:
        self.spawn(["nginx", "-c", str(self.conf), "-p", str(self.prefix)])
        wait_port(self.port, 10, "nginx", self.proc)
        return self


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"},
                                 method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        reply = json.loads(r.read())
    if reply.get("janus") == "error":
        raise RuntimeError(f"Janus: {reply['error']}")
    return reply
