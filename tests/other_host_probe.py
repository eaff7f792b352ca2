"""What the other host of tests/integration/test_other_host.py runs, in its network namespace.

    ip netns exec NS python -m tests.other_host_probe PROBE   # the plan on stdin, JSON out

Each probe talks to the link directly (no proxy, no shared cookies) and says what it got.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable
from typing import Any

BODY_LIMIT = 2_000_000  # bytes kept of one answer
READ_S = 5.0  # per answer: a stream left open (server-sent events) is cut after this


def probe_http(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Each request on its own (no cookies shared, proxies ignored): status, body or error."""
    import requests

    answers = []
    for request in plan["requests"]:
        session = requests.Session()
        session.trust_env = False  # no proxy, no .netrc
        try:
            with session.request(
                request["method"],
                request["url"],
                json=request.get("json"),
                headers=request.get("headers"),
                timeout=(5, READ_S),
                stream=True,
            ) as response:
                answers.append({"status": response.status_code, "body": _read(response)})
        except requests.RequestException as exc:
            answers.append({"status": None, "body": "", "error": f"{type(exc).__name__}: {exc}"})
        finally:
            session.close()
    return answers


def _read(response: Any) -> str:
    import requests

    chunks: list[bytes] = []
    deadline = time.monotonic() + READ_S
    with contextlib.suppress(requests.RequestException):
        for chunk in response.iter_content(8192):
            chunks.append(chunk)
            if sum(map(len, chunks)) > BODY_LIMIT or time.monotonic() > deadline:
                break
    return b"".join(chunks).decode(errors="replace")


def probe_gradio_signin(plan: dict[str, Any]) -> dict[str, Any]:
    """Sign in the browser's way (the /login form) and gradio_client's way, then predict."""
    import requests
    from gradio_client import Client

    url, user, password = plan["url"], plan["user"], plan["password"]
    found: dict[str, Any] = {}
    with requests.Session() as session:
        session.trust_env = False
        login = session.post(
            url.rstrip("/") + "/login", data={"username": user, "password": password}, timeout=30
        )
        config = session.get(url.rstrip("/") + "/config", timeout=30)
    found.update(login_status=login.status_code, config_status=config.status_code)
    found["config_body"] = config.text
    for name, auth in (("without_credentials", None), ("wrong_password", (user, "x" + password))):
        try:
            Client(url, auth=auth, analytics_enabled=False, verbose=False)
            found[name] = "signed in"
        except Exception as exc:
            found[name] = f"{type(exc).__name__}: {exc}"
    client = Client(url, auth=(user, password), analytics_enabled=False, verbose=False)
    found["label"] = client.predict(**plan["record"], api_name="/predict")[2]["label"]
    return found


class StreamlitVisitor:
    """A Streamlit client without a browser: the page's WebSocket, its protobuf messages."""

    def __init__(self, url: str) -> None:
        from websockets.sync.client import connect

        self.socket = connect(url, subprotocols=["streamlit"], open_timeout=10)  # type: ignore[list-item]

    def run(self, widgets: dict[str, tuple[str, Any]]) -> list[dict[str, Any]]:
        """Rerun the script with these widget values (id -> (field, value)); every message
        until the run finished (a run that reruns itself is followed into the next)."""
        from google.protobuf.json_format import MessageToDict
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        message = BackMsg()
        message.rerun_script.query_string = ""
        for widget_id, (field, value) in widgets.items():
            state = message.rerun_script.widget_states.widgets.add()
            state.id = widget_id
            setattr(state, field, value)
        self.socket.send(message.SerializeToString())
        frames = []
        deadline = time.monotonic() + 60
        while True:
            forward = ForwardMsg()
            forward.ParseFromString(self.socket.recv(timeout=deadline - time.monotonic()))
            frames.append(MessageToDict(forward, preserving_proto_field_name=True))
            finished = frames[-1].get("script_finished")
            if finished in ("FINISHED_SUCCESSFULLY", "FINISHED_WITH_COMPILE_ERROR"):
                return frames

    def close(self) -> None:
        self.socket.close()


def _widget_ids(frames: list[dict[str, Any]]) -> dict[str, str]:
    """Widget ids by label, as the page drew them."""
    ids = {}
    for frame in frames:
        for props in frame.get("delta", {}).get("new_element", {}).values():
            if isinstance(props, dict) and props.get("id") and props.get("label"):
                ids[props["label"]] = props["id"]
    return ids


def probe_streamlit(plan: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """A visitor: anonymous, a wrong password, signed in, a prediction; meanwhile a second."""
    user, password = plan["user"], plan["password"]
    runs = {}
    visitor = StreamlitVisitor(plan["url"])
    try:
        runs["anonymous"] = visitor.run({})
        login = _widget_ids(runs["anonymous"])

        def sign_in(given: str) -> list[dict[str, Any]]:
            return visitor.run(
                {
                    login["Username"]: ("string_value", user),
                    login["Password"]: ("string_value", given),
                    login["Sign in"]: ("trigger_value", True),
                }
            )

        runs["wrong_password"] = sign_in("x" + password)
        runs["signed_in"] = sign_in(password)
        page = _widget_ids(runs["signed_in"])
        runs["predicted"] = visitor.run(
            {
                page["record as JSON"]: ("string_value", json.dumps(plan["record"])),
                page["Fill the form and predict"]: ("trigger_value", True),
            }
        )
        second = StreamlitVisitor(plan["url"])  # while the first is still signed in
        try:
            runs["second_visitor"] = second.run({})
        finally:
            second.close()
    finally:
        visitor.close()
    return runs


PROBES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "http": probe_http,
    "gradio-signin": probe_gradio_signin,
    "streamlit": probe_streamlit,
}


def main(argv: list[str]) -> int:
    """Run one probe: its plan on stdin, what it got on stdout (anything else goes to stderr)."""
    plan = json.load(sys.stdin)
    out = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        found = PROBES[argv[0]](plan)
    json.dump(found, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
