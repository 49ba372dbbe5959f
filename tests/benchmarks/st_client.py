"""A browser-less Streamlit client: one session on the websocket the frontend uses (`/_stcore/stream`),
speaking the protobufs Streamlit ships. Enough to press widgets, open a page of `st.navigation` and
rerun it, timing each run from the rerun request to its `script_finished`.

Like a browser without a message cache: it sends no cached message hashes, so every element arrives
in full. Widget values set on a run are sent again on later runs while the widget is on screen;
button presses (trigger values) are sent once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from streamlit.proto.AppPage_pb2 import AppPage
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.proto.Element_pb2 import Element as ElementProto
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from tornado.websocket import WebSocketClientConnection, websocket_connect

MAX_MESSAGE_BYTES = 200 * 1024 * 1024  # Streamlit's default server.maxMessageSize


@dataclass(frozen=True)
class Element:
    """One element a run drew: its kind (the `Element` oneof: "radio", "button", "heading",
    "exception", ...), the widget id ("" for non-widgets), its label and its body or message."""

    kind: str
    id: str
    label: str
    text: str
    options: tuple[str, ...] = ()


@dataclass
class RunResult:
    """What one run (including the runs `st.rerun` chained to it) showed, and how long it took."""

    seconds: float = 0.0
    page_script_hash: str = ""
    elements: list[Element] = field(default_factory=list)
    compile_errors: list[str] = field(default_factory=list)

    @property
    def exceptions(self) -> list[Element]:
        return [e for e in self.elements if e.kind == "exception"]

    def widget(self, kind: str, label: str) -> Element:
        found = [e for e in self.elements if e.kind == kind and e.label == label and e.id]
        if len(found) != 1:
            raise LookupError(f"{len(found)} {kind} widgets labelled {label!r}; drew {self.outline()}")
        return found[0]

    def shows(self, text: str) -> bool:
        return any(text in e.label or text in e.text for e in self.elements)

    def outline(self) -> list[str]:
        """Element kinds with widget labels and headings only: safe to print (no message text)."""
        return [f"{e.kind}:{e.label or (e.text if e.kind == 'heading' else '')}" for e in self.elements]


def choice(widget: Element, index: int) -> WidgetState:
    """A radio or selectbox choice: Streamlit 1.67 sends the option as drawn (after format_func)."""
    return WidgetState(id=widget.id, string_value=widget.options[index])


def trigger(widget_id: str) -> WidgetState:
    """A button press."""
    return WidgetState(id=widget_id, trigger_value=True)


def _element(element: ElementProto) -> Element:
    kind = element.WhichOneof("type") or ""
    proto = getattr(element, kind) if kind else None
    fields = proto.DESCRIPTOR.fields_by_name if proto is not None else {}

    def text_of(name: str) -> str:
        value = getattr(proto, name) if name in fields else ""
        return value if isinstance(value, str) else ""

    options = tuple(proto.options) if "options" in fields else ()  # type: ignore[union-attr]
    return Element(kind, text_of("id"), text_of("label"), text_of("body") or text_of("message"), options)


class Session:
    """One browser tab's session on a running app (`base_url` like http://127.0.0.1:8501)."""

    def __init__(self, base_url: str, timeout: float = 120.0) -> None:
        self.url = base_url.replace("http://", "ws://", 1).rstrip("/") + "/_stcore/stream"
        self.timeout = timeout
        self.pages: dict[str, str] = {}  # url path and page title -> page_script_hash
        self.page_script_hash = ""
        self._widgets: dict[str, WidgetState] = {}
        self._ws: WebSocketClientConnection | None = None

    async def connect(self) -> None:
        # The frontend offers the "streamlit" subprotocol; the header's later entries (XSRF token,
        # a session id to resume) are optional, and a client without an Origin header is allowed.
        self._ws = await websocket_connect(
            self.url, connect_timeout=self.timeout, subprotocols=["streamlit"], max_message_size=MAX_MESSAGE_BYTES
        )

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()
            self._ws = None

    async def run(self, page: str | None = None, widgets: Iterable[WidgetState] = (), query: str = "") -> RunResult:
        """Rerun the script on `page` (url path or title; the current page when None) with `widgets`
        set on top of the values set before, and wait until the run and any `st.rerun` it made end."""
        if self._ws is None:
            raise RuntimeError("connect() first")
        pressed = []
        for widget in widgets:
            if widget.WhichOneof("value") == "trigger_value":
                pressed.append(widget)
            else:
                self._widgets[widget.id] = widget
        state = ClientState(
            query_string=query,
            page_script_hash=self.pages[page] if page is not None else self.page_script_hash,
        )
        state.widget_states.widgets.extend([*self._widgets.values(), *pressed])
        result = RunResult()
        started = time.perf_counter()
        await self._ws.write_message(BackMsg(rerun_script=state).SerializeToString(), binary=True)
        await asyncio.wait_for(self._read_until_finished(result), self.timeout)
        result.seconds = time.perf_counter() - started
        # A browser forgets the values of widgets that are no longer drawn.
        shown = {e.id for e in result.elements if e.id}
        self._widgets = {k: v for k, v in self._widgets.items() if k in shown}
        return result

    async def _read_until_finished(self, result: RunResult) -> None:
        assert self._ws is not None
        started = False  # a script_finished before our run's new_session would belong to an older run
        while True:
            raw = await self._ws.read_message()
            if raw is None:
                raise ConnectionError(f"the server closed the websocket ({self._ws.close_code})")
            msg = ForwardMsg()
            msg.ParseFromString(raw if isinstance(raw, bytes) else raw.encode())
            kind = msg.WhichOneof("type")
            if kind == "new_session":
                started = True
                self.page_script_hash = result.page_script_hash = msg.new_session.page_script_hash
                self._learn_pages(msg.new_session.app_pages)
                result.elements.clear()  # a chained run (st.rerun) redraws the page from scratch
            elif kind == "navigation":  # st.navigation's pages, and the one it ran
                self._learn_pages(msg.navigation.app_pages)
                self.page_script_hash = result.page_script_hash = msg.navigation.page_script_hash
            elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                result.elements.append(_element(msg.delta.new_element))
            elif kind == "session_event" and msg.session_event.HasField("script_compilation_exception"):
                result.compile_errors.append(msg.session_event.script_compilation_exception.type)
            elif kind == "script_finished" and started and msg.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                return  # a run that ended early for st.rerun is followed by the chained run

    def _learn_pages(self, pages: Iterable[AppPage]) -> None:
        for page in pages:
            self.pages[page.url_pathname] = self.pages[page.page_name] = page.page_script_hash
