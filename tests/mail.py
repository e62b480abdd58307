"""Messages as the exact bytes a client sends, CRLF line endings throughout."""

import base64
import os
import smtplib
import uuid

TIMEOUT = 15


def new_message_id(tag="test"):
    return f"<{tag}.{uuid.uuid4().hex}@client.example.net>"


def message(sender="sender@remote.test", to="bob@example.test", subject="hello",
            body="Hello.\r\n", message_id=None, date=True, extra_headers=()):
    headers = [f"From: {sender}", f"To: {to}", f"Subject: {subject}"]
    if date:
        headers.append("Date: Thu, 27 Nov 2025 10:00:00 +0000")
    if message_id is not False:
        headers.append(f"Message-ID: {message_id or new_message_id()}")
    headers.extend(extra_headers)
    text = "\r\n".join(headers) + "\r\n\r\n" + body
    return text.encode("utf-8")


def with_attachment(size=1024 * 1024, sender="sender@remote.test", to="bob@example.test"):
    payload = base64.encodebytes(os.urandom(size)).replace(b"\n", b"\r\n")
    boundary = "sealpost-boundary-" + uuid.uuid4().hex
    head = message(sender, to, "attachment", body="", extra_headers=[
        "MIME-Version: 1.0", f'Content-Type: multipart/mixed; boundary="{boundary}"'])
    return (head
            + f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n".encode()
            + f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
              f"Content-Transfer-Encoding: base64\r\n"
              f'Content-Disposition: attachment; filename="blob.bin"\r\n\r\n'.encode()
            + payload
            + f"--{boundary}--\r\n".encode())


def header_section(stored: bytes) -> bytes:
    return stored.split(b"\r\n\r\n", 1)[0] + b"\r\n"


def header_values(stored: bytes, name: str):
    """Values of the header `name` in the header section (unfolded, without the name)."""
    values = []
    current = None
    for line in header_section(stored).split(b"\r\n"):
        if line.startswith((b" ", b"\t")):
            if current:
                values[-1] += b" " + line.strip()
            continue
        field, sep, value = line.partition(b":")
        current = field.strip().lower() == name.lower().encode() if sep else None
        if current:
            values.append(value.strip())
    return [v.decode("utf-8", "replace") for v in values]


def smtp(port, host="127.0.0.1"):
    return smtplib.SMTP(host, port, timeout=TIMEOUT)


def smtp_ssl(port, context, host="127.0.0.1"):
    return smtplib.SMTP_SSL(host, port, timeout=TIMEOUT, context=context)


def login(client: smtplib.SMTP, user, password, mechanism="PLAIN"):
    """AUTH with exactly `mechanism` (smtplib's login() picks its own). smtplib's auth()
    returns a 503 as if it were success, so callers check for 235."""
    client.ehlo_or_helo_if_needed()
    client.user, client.password = user, password
    return client.auth(mechanism, getattr(client, "auth_" + mechanism.lower()),
                       initial_response_ok=True)
