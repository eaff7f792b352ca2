"""The Gradio demo, generated from the schema of whatever Predictor it is given."""

from __future__ import annotations

import inspect
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio reads it

import gradio as gr

from app_prototype import presentation as ui
from app_prototype.gradio_auth import login_wall_kwargs
from app_prototype.sharing import lan_urls, only_this_machine, require_auth_if_exposed
from model.errors import InvalidInput, ServiceUnavailable
from model.feedback import FeedbackSink
from model.predictor import Prediction, Predictor
from model.schema import Feature, ModelSchema

THEME = gr.themes.Soft()
# The result panel (Predict, what needs attention, the result) stays in view while a long form
# scrolls beside it. Gradio's container clips with `overflow: hidden`, which makes it the
# panel's scroll box (and sticky a no-op); `clip` clips the same without being one.
CSS = """
.gradio-container { overflow: clip !important; }
#result-panel { position: sticky; top: 0.75rem; align-self: flex-start; }
"""
# In the browser, at once: a result no longer belongs to inputs that changed. (`{}` empties
# a Label or a JSON; a `null` would make Gradio drop the whole update.)
STALE_JS = f"() => [{{}}, {json.dumps(ui.STALE_NOTE)}, {{}}]"
PRIVATE = "private"  # events of the page itself, not part of the API


def elem_id(feature: Feature) -> str:
    """The HTML id of a feature's widget ('in-bill_length_mm', 'in-mean_radius')."""
    return "in-" + re.sub(r"[^A-Za-z0-9_-]", "_", feature.name)


def _widget(feature: Feature, **layout: Any) -> gr.components.Component:
    common: dict[str, Any] = {
        "label": feature.name,
        "info": ui.help_text(feature),
        "elem_id": elem_id(feature),
        **layout,
    }
    if feature.kind in ("number", "integer"):
        # No minimum/maximum here: Gradio's own bound check does not name the field; the
        # schema's validator below does, inline under the widget.
        return gr.Number(value=ui.widget_default(feature), **common)
    if feature.kind == "category":
        return gr.Dropdown(
            choices=ui.choices_of(feature),
            value=feature.default,
            allow_custom_value=feature.allow_unknown,
            **common,
        )
    if feature.kind == "boolean":
        return gr.Checkbox(value=bool(feature.default), **common)
    return gr.Textbox(value=feature.default or "", **common)


def _widgets(schema: ModelSchema) -> list[gr.components.Component]:
    """One widget per feature, in schema order: a column for a few, a grid of rows for many."""
    columns = ui.grid_columns(schema)
    if columns == 1:
        return [_widget(f) for f in schema.features]
    widgets: list[gr.components.Component] = []
    for start in range(0, len(schema.features), columns):
        row = schema.features[start : start + columns]
        with gr.Row(equal_height=True):
            widgets.extend(_widget(f, scale=1, min_width=160) for f in row)
            for _ in range(columns - len(row)):  # keeps the last row's cells in the grid
                gr.Column(scale=1, min_width=160)
    return widgets


def _field_messages(schema: ModelSchema, values: tuple[Any, ...]) -> dict[str, str]:
    record = ui.record_from_widgets(schema, values)
    return {e.field: e.message for e in schema.validate_record(record)}


def _forget(name: str) -> Callable[[Any, list[str]], tuple[str, list[str]]]:
    """A field was edited: its error goes (Gradio clears it when an event takes the field as an
    input), and so does its name next to the button."""

    def edited(_value: Any, fields: list[str] | None) -> tuple[str, list[str]]:
        left = [field for field in fields or [] if field != name]
        return ui.attention_text(left), left

    return edited


def _signature(schema: ModelSchema, *extra: str) -> inspect.Signature:
    """The API's parameters: the features' names (feature_0... where they cannot be), then
    `extra`."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    names = schema.feature_names
    if not all(name.isidentifier() for name in names) or set(names) & set(extra):
        names = [f"feature_{i}" for i in range(len(names))]
    return inspect.Signature([inspect.Parameter(name, kind) for name in [*names, *extra]])


def build_demo(
    predictor: Predictor,
    *,
    show_service_url: bool = False,
    feedback: FeedbackSink | None = None,
) -> gr.Blocks:
    """A Blocks app: one widget per feature (a grid for many), examples that predict when
    clicked, a record pasted as JSON, and beside them Predict, what needs attention and the
    result, which always belongs to the inputs shown; with `feedback`, "Wrong? Tell us" under
    the result. `show_service_url`: the viewer is the owner (`only_this_machine`), who may see
    where the model service is."""
    info = predictor.info()
    schema = info.model_schema

    def validate(*values: Any) -> list[dict[str, Any]]:
        messages = _field_messages(schema, values)
        return [
            gr.validate(f.name not in messages, messages.get(f.name, "")) for f in schema.features
        ]

    def predict(*values: Any) -> tuple[Any, str, dict[str, Any]]:
        record = ui.record_from_widgets(schema, values)
        try:
            prediction = predictor.predict([record])[0]
        except InvalidInput as exc:
            raise gr.Error(str(exc), title="Invalid input", print_exception=False) from exc
        except ServiceUnavailable as exc:
            print(f"model service unavailable: {exc}", flush=True)  # a line, not a traceback
            raise gr.Error(
                ui.unavailable_message(exc, show_service_url),
                title="Service unavailable",
                print_exception=False,
            ) from exc
        return _shown(prediction, schema, info.metrics)

    def check(*values: Any) -> tuple[Any, ...]:
        """Before predicting: the fields that need attention, named by the button; with any, the
        result goes (it belonged to other inputs)."""
        messages = _field_messages(schema, values)
        fields = [f.name for f in schema.features if f.name in messages]
        if fields:
            return ui.attention_text(fields), fields, None, "", None
        return "", [], gr.skip(), gr.skip(), gr.skip()

    def predict_example(*values: Any) -> tuple[Any, ...]:
        return (*predict(*values), "", [])

    def fill_from_json(text: str) -> tuple[Any, ...]:
        try:
            values = ui.values_from_json(schema, text or "")
        except ValueError as exc:
            raise gr.Error(str(exc), title="Invalid record", print_exception=False) from exc
        return (*values, "", [])

    # Name the API's parameters after the features: client.predict(island="Dream", ...)
    predict.__signature__ = validate.__signature__ = _signature(schema)  # type: ignore[attr-defined]

    page_title = f"{schema.title} ({info.title})" if schema.title else info.title
    with gr.Blocks(title=f"{page_title} demo", analytics_enabled=False) as demo:
        header = gr.Markdown(ui.header_markdown(info, show_service_url), elem_id="model-header")
        needing = gr.State([])  # the fields named next to the button
        attention = gr.Markdown(elem_id="attention", render=False)
        if schema.task == "classification":
            output: gr.components.Component = gr.Label(
                label="class probabilities",
                num_top_classes=len(schema.classes or []),
                elem_id="out-label",
                render=False,
            )
        else:  # a value to read, not a number box to edit
            output = gr.Label(label="prediction", elem_id="out-value", render=False)
        summary = gr.Markdown(elem_id="out-summary", render=False)
        raw = gr.JSON(label="prediction", render=False)
        results = [output, summary, raw]
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                inputs = _widgets(schema)
                if schema.examples:
                    gr.Examples(
                        examples=ui.example_rows(schema),
                        inputs=inputs,
                        outputs=[*results, attention, needing],
                        fn=predict_example,
                        run_on_click=True,  # an example clicked is an example predicted
                        cache_examples=False,
                        example_labels=ui.example_names(schema),
                        label="Examples (click one to predict it)",
                    )
                with gr.Accordion("Paste a record as JSON", open=False):
                    pasted = gr.Textbox(
                        label="record as JSON",
                        lines=4,
                        placeholder=json.dumps(schema.defaults()),
                        elem_id="record-json",
                    )
                    fill = gr.Button("Fill the form and predict")
            with gr.Column(scale=2, elem_id="result-panel"):
                button = gr.Button("Predict", variant="primary")
                attention.render()
                output.render()
                summary.render()
                with gr.Accordion("Raw prediction (the API's JSON)", open=False):
                    raw.render()
                if feedback is not None:
                    _feedback_panel(feedback, predictor, schema, inputs, raw)
        # On each page load: the backend's current URL (a promoted service may have moved).
        demo.load(
            lambda: ui.header_markdown(predictor.info(), show_service_url),
            None,
            header,
            api_name=False,
        )
        button.click(
            check,
            inputs,
            [attention, needing, *results],
            queue=False,
            show_progress="hidden",
            api_visibility=PRIVATE,
        ).then(predict, inputs, results, api_name="predict", validator=validate)
        fill.click(
            fill_from_json,
            pasted,
            [*inputs, attention, needing],
            queue=False,
            api_visibility=PRIVATE,
        ).success(predict, inputs, results, api_visibility=PRIVATE)
        for feature, widget in zip(schema.features, inputs, strict=True):
            widget.change(None, None, results, js=STALE_JS, api_visibility=PRIVATE)
            widget.input(
                _forget(feature.name),
                [widget, needing],
                [attention, needing],
                queue=False,
                show_progress="hidden",
                api_visibility=PRIVATE,
            )
    return demo


def _feedback_panel(
    sink: FeedbackSink,
    predictor: Predictor,
    schema: ModelSchema,
    inputs: list[gr.components.Component],
    raw: gr.JSON,
) -> None:
    """ "Wrong? Tell us": the correct class (or value) and a comment, about the prediction
    shown (the raw JSON beside it: empty once inputs change), saved with the tester's user
    name; the API's `feedback` endpoint, too."""
    with gr.Accordion(ui.FEEDBACK_TITLE, open=False, elem_id="feedback"):
        correct: gr.components.Component
        if schema.task == "classification":
            choices = [(ui.class_label(schema, c), c) for c in schema.classes or []]
            correct = gr.Dropdown(
                choices=choices, value=None, label=ui.feedback_label(schema), elem_id="fb-correct"
            )
        else:
            correct = gr.Number(value=None, label=ui.feedback_label(schema), elem_id="fb-correct")
        comment = gr.Textbox(label="comment (optional)", lines=2, elem_id="fb-comment")
        send = gr.Button("Send feedback", elem_id="fb-send")
        status = gr.Markdown(elem_id="fb-status")

    def send_feedback(*values: Any) -> str:
        *features, prediction, right, remark, request = values
        user = getattr(request, "username", None)
        record = ui.record_from_widgets(schema, features)
        return ui.send_feedback(
            sink, predictor.info(), record, prediction, right, remark, user, "gradio"
        )

    extra = ("prediction", "correct", "comment", "request")
    send_feedback.__signature__ = _signature(schema, *extra)  # type: ignore[attr-defined]
    send_feedback.__annotations__ = {"request": gr.Request}  # Gradio passes it: the user name
    send.click(send_feedback, [*inputs, raw, correct, comment], status, api_name="feedback")


def _shown(
    prediction: Prediction, schema: ModelSchema, metrics: dict[str, float]
) -> tuple[Any, str, dict[str, Any]]:
    """The Label's value, the summary line (with the warnings) and the raw JSON."""
    summary = ui.prediction_summary(prediction, schema, metrics)
    shown: Any = (
        ui.shown_probabilities(prediction, schema) if schema.task == "classification" else summary
    )
    text = f"**Prediction:** {summary} · answered by version `{prediction.model_version}`"
    if warned := ui.warnings_markdown(prediction):
        text += "\n\n" + warned.replace("\n", "\n\n")
    return shown, text, prediction.to_json()


@dataclass
class Launched:
    demo: gr.Blocks
    local_url: str
    share_url: str | None
    lan: list[str]


def _app_kwargs(auth: tuple[str, str] | None) -> dict[str, Any] | None:
    """With credentials, the login wall: before signing in, nothing about the model is served
    (Gradio's own login page embeds the API description). Without, Gradio's app as it is."""
    return login_wall_kwargs() if auth else None


def launch(
    predictor: Predictor,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    auth: tuple[str, str] | None = None,
    share: bool = False,
    share_server: str | None = None,
    lan_host: str = "0.0.0.0",  # noqa: S104 - only used when sharing, which requires auth
    say: Callable[[str], None] = print,
    feedback: FeedbackSink | None = None,
) -> Launched:
    """Start the demo without blocking. With `share`, fall back to the LAN when no link comes."""
    require_auth_if_exposed(host, share, auth)
    demo = build_demo(predictor, show_service_url=only_this_machine(host, share), feedback=feedback)
    options: dict[str, Any] = {
        "auth": auth,
        "prevent_thread_lock": True,
        "quiet": True,
        "theme": THEME,
        "css": CSS,
    }
    if share:
        import contextlib
        import io

        # Gradio prints its own lines when no link comes (the tunnel's log, "Could not create
        # share link", download steps for frpc, "Closing server"): the kit says it in one.
        gradio_says = io.StringIO()
        with contextlib.redirect_stdout(gradio_says), contextlib.redirect_stderr(gradio_says):
            _, local_url, share_url = demo.launch(
                server_name=host,
                server_port=port,
                share=True,
                share_server_address=share_server,
                app_kwargs=_app_kwargs(auth),
                **options,
            )
            if not share_url:
                demo.close()
        if share_url:
            say(f"share link: {share_url} (protected by --auth)")
            return Launched(demo, local_url, share_url, [])
        say(
            "share link unavailable (no internet, or the share server refused us): "
            f"serving on the local network instead ({lan_host})"
        )
        host = lan_host
    _, local_url, _ = demo.launch(
        server_name=host, server_port=port, app_kwargs=_app_kwargs(auth), **options
    )
    lan = (
        lan_urls(demo.server_port, host) if not (host == "127.0.0.1" or host == "localhost") else []
    )
    return Launched(demo, local_url, None, lan)
