"""io.kestra.plugin.notifications.mail.MailSend: send an e-mail over SMTP
(plain, STARTTLS or implicit TLS), with HTML and text bodies, attachments and
embedded images taken from files of the execution."""

from __future__ import annotations

import json
import mimetypes
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import getaddresses, make_msgid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from harrier.common.errors import TaskFailed
from harrier.common.task import Task, register_task
from harrier.worker.context import TaskContext
from harrier.worker.execution_files import require_execution_file

PORTS = {"SMTP": 25, "SMTP_TLS": 587, "SMTPS": 465}
TEXT_FALLBACK = "Please view this email in a modern email client"  # Kestra's


class Attachment(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", populate_by_name=True)
    name: str
    uri: str
    content_type: str = Field("application/octet-stream", alias="contentType")


@register_task("io.kestra.plugin.notifications.mail.MailSend")
class MailSend(Task):
    host: str
    port: int | None = None
    username: str | None = None
    password: str | None = None
    transport_strategy: Literal["SMTP", "SMTP_TLS", "SMTPS"] = Field(
        "SMTPS", alias="transportStrategy")
    session_timeout: int = Field(10000, alias="sessionTimeout", ge=1)  # milliseconds
    from_: str = Field(alias="from")
    to: str | list[str]
    cc: str | list[str] | None = None
    subject: str | None = None
    html_text_content: str | None = Field(None, alias="htmlTextContent")
    plain_text_content: str | None = Field(None, alias="plainTextContent")
    # A list, or a JSON string of one (Kestra's `{{ inputs.files | toJson }}`).
    attachments: list[Attachment] | str | None = None
    embedded_images: list[Attachment] | str | None = Field(None, alias="embeddedImages")

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        message = self.message(ctx)
        host = str(ctx.render(self.host, "host"))
        port = self.port or PORTS[self.transport_strategy]
        recipients = [address for _, address in getaddresses(
            [message["To"] or "", message["Cc"] or ""]) if address]
        timeout = self.session_timeout / 1000
        where = f"{self.transport_strategy.lower()} {host}:{port}"
        try:
            if self.transport_strategy == "SMTPS":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    host, port, timeout=timeout, context=ssl.create_default_context())
            else:
                client = smtplib.SMTP(host, port, timeout=timeout)
            with client:
                if self.transport_strategy == "SMTP_TLS":
                    client.starttls(context=ssl.create_default_context())
                if self.username:
                    client.login(str(ctx.render(self.username, "username")),
                                 str(ctx.render(self.password or "", "password")))
                client.send_message(message, to_addrs=recipients)
        except smtplib.SMTPAuthenticationError as exc:
            raise TaskFailed(f"{where}: login refused ({exc.smtp_code} "
                             f"{_text(exc.smtp_error)})", retryable=False) from None
        except smtplib.SMTPRecipientsRefused as exc:
            refused = ", ".join(f"{who} ({code} {_text(why)})"
                                for who, (code, why) in exc.recipients.items())
            raise TaskFailed(f"{where}: recipients refused: {refused}",
                             retryable=False) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise TaskFailed(f"{where}: {type(exc).__name__}: {exc}") from None
        ctx.log("INFO", f"e-mail {message['Subject']!r} sent to {', '.join(recipients)} "
                        f"through {host}:{port}")
        return {}

    def message(self, ctx: TaskContext) -> EmailMessage:
        message = EmailMessage()
        message["From"] = str(ctx.render(self.from_, "from"))
        message["To"] = _addresses(ctx.render(self.to, "to"))
        if self.cc:
            message["Cc"] = _addresses(ctx.render(self.cc, "cc"))
        if self.subject is not None:
            message["Subject"] = str(ctx.render(self.subject, "subject"))
        text = ctx.render(self.plain_text_content, "plainTextContent") \
            if self.plain_text_content is not None else TEXT_FALLBACK
        message.set_content(str(text))
        if self.html_text_content is not None:
            message.add_alternative(str(ctx.render(self.html_text_content, "htmlTextContent")),
                                    subtype="html")
            html = message.get_body(("html",))
            assert isinstance(html, EmailMessage)  # the alternative just added
            for image in self._files(ctx, self.embedded_images, "embeddedImages"):
                data, maintype, subtype = image
                html.add_related(data[1], maintype=maintype, subtype=subtype,
                                 cid=f"<{data[0]}>", filename=data[0], disposition="inline")
        elif self.embedded_images:
            raise TaskFailed("embeddedImages: images are referred to from htmlTextContent, "
                             "which is missing", retryable=False)
        for (name, content), maintype, subtype in self._files(ctx, self.attachments,
                                                             "attachments"):
            message.add_attachment(content, maintype=maintype, subtype=subtype, filename=name)
        message["Message-ID"] = make_msgid(domain="harrier")
        return message

    def _files(self, ctx: TaskContext, value: list[Attachment] | str | None, field: str
               ) -> list[tuple[tuple[str, bytes], str, str]]:
        if value is None:
            return []
        if isinstance(value, str):
            rendered = ctx.render(value, field)
            if not str(rendered).strip():
                return []
            try:
                items = [Attachment.model_validate(item) for item in (
                    json.loads(rendered) if isinstance(rendered, str) else rendered)]
            except (ValueError, TypeError) as exc:
                raise TaskFailed(f"{field}: expected a list of {{name, uri, contentType}} "
                                 f"(or its JSON): {exc}", retryable=False) from None
        else:
            items = value
        found = []
        for index, item in enumerate(items):
            name = str(ctx.render(item.name, f"{field}[{index}].name"))
            path = require_execution_file(ctx, str(ctx.render(item.uri, f"{field}[{index}].uri")),
                                          f"{field}[{index}].uri")
            content_type = str(ctx.render(item.content_type, f"{field}[{index}].contentType"))
            if content_type == "application/octet-stream":
                content_type = mimetypes.guess_type(name)[0] or content_type
            maintype, _, subtype = content_type.partition("/")
            found.append(((name, path.read_bytes()), maintype, subtype or "octet-stream"))
        return found


def _addresses(value: Any) -> str:
    """Kestra separates addresses with ';'; a YAML list works too."""
    items = value if isinstance(value, list) else str(value).split(";")
    return ", ".join(str(item).strip() for item in items if str(item).strip())


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
