"""mbsync (isync) keeps a local Maildir and the server's mailboxes in step over IMAPS with
the generated CA: new mail, flags, moves and new folders travel both ways."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import PASSWORDS
from mail import message
from mailread import BOB, READING_CONFIG, SAMPLES, deliver, imaps, ok, stored

MBSYNC_TIMEOUT = 60


@pytest.fixture
def server(make_server):
    return make_server(config=READING_CONFIG)


class Mbsync:
    """One local Maildir tree synced with bob's server mailboxes by one channel."""

    def __init__(self, server, root: Path, user=BOB):
        assert shutil.which("mbsync"), "mbsync is not installed: run scripts/test (it installs isync)"
        self.maildir = root / "Mail"
        self.maildir.mkdir(parents=True)
        self.config = root / "mbsyncrc"
        self.config.write_text(
            "IMAPAccount sealpost\n"
            "Host localhost\n"
            f"Port {server.ports['imaps']}\n"
            f"User {user}\n"
            f'Pass "{PASSWORDS[user]}"\n'
            "SSLType IMAPS\n"
            f"CertificateFile {server.ca_path}\n"
            "\n"
            "IMAPStore remote\n"
            "Account sealpost\n"
            "\n"
            "MaildirStore local\n"
            f"Path {self.maildir}/\n"
            f"Inbox {self.maildir}/INBOX\n"
            "SubFolders Verbatim\n"
            "\n"
            "Channel mail\n"
            "Far :remote:\n"
            "Near :local:\n"
            "Patterns *\n"
            "Create Both\n"
            "Expunge Both\n"
            "SyncState *\n")
        self.config.chmod(0o600)
        self.home = root

    def sync(self):
        run = subprocess.run(["mbsync", "-c", str(self.config), "-a", "-V"], capture_output=True,
                             timeout=MBSYNC_TIMEOUT, env=dict(os.environ, HOME=str(self.home)))
        text = run.stdout.decode(errors="replace") + run.stderr.decode(errors="replace")
        assert run.returncode == 0, f"mbsync exited {run.returncode}:\n{text[-6000:]}"
        assert "Connection is now encrypted" in text, text[-3000:]
        return text

    def folder(self, name) -> Path:
        return self.maildir / name

    def files(self, name):
        """The message files of a local folder (new/ and cur/)."""
        folder = self.folder(name)
        return sorted(p for sub in ("new", "cur") if (folder / sub).is_dir()
                      for p in (folder / sub).iterdir() if not p.name.startswith("."))


def as_stored(local: bytes) -> bytes:
    """A Maildir file as the server stores it: mbsync writes LF line endings and adds an
    X-TUID header of its own."""
    head, sep, body = local.partition(b"\n\n")
    head = b"\n".join(line for line in head.split(b"\n") if not line.startswith(b"X-TUID: "))
    return (head + sep + body).replace(b"\n", b"\r\n")


def without_tuid(on_server: bytes) -> bytes:
    head, sep, body = on_server.partition(b"\r\n\r\n")
    head = b"\r\n".join(line for line in head.split(b"\r\n") if not line.startswith(b"X-TUID: "))
    return head + sep + body


def maildir_flags(path: Path) -> str:
    return path.name.rsplit(":2,", 1)[1] if ":2," in path.name else ""


def server_flags(server, mailbox="INBOX"):
    """{uid: flags bytes} of bob's mailbox, as an IMAP client sees them."""
    client = imaps(server)
    try:
        exists = int(ok(client.select(mailbox))[0])
        data = ok(client.fetch("1:*", "(UID FLAGS)")) if exists else []
    finally:
        client.logout()
    out = {}
    for line in data:
        match = re.search(rb"UID (\d+) FLAGS \(([^)]*)\)|FLAGS \(([^)]*)\) UID (\d+)", line)
        assert match, line
        if match.group(1):
            out[int(match.group(1))] = match.group(2)
        else:
            out[int(match.group(4))] = match.group(3)
    return out


def test_mbsync_pulls_every_server_mailbox_and_new_messages_exactly(server, tmp_path):
    for make in SAMPLES.values():
        deliver(server, make())
    on_server = [data for _, data in stored(server, BOB)]
    mbsync = Mbsync(server, tmp_path)
    mbsync.sync()
    for name in ("INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"):
        assert mbsync.folder(name).is_dir(), f"no local folder for {name}"
    local = [as_stored(p.read_bytes()) for p in mbsync.files("INBOX")]
    assert sorted(local) == sorted(on_server)

    later = message(subject="arrived later")
    deliver(server, later)
    mbsync.sync()
    local = [as_stored(p.read_bytes()) for p in mbsync.files("INBOX")]
    assert len(local) == 4
    assert sorted(local) == sorted(data for _, data in stored(server, BOB))


def test_mbsync_pushes_a_local_seen_flag_to_the_server(server, tmp_path):
    deliver(server, message(subject="read me"))
    deliver(server, message(subject="leave me"))
    mbsync = Mbsync(server, tmp_path)
    mbsync.sync()
    files = mbsync.files("INBOX")
    assert len(files) == 2
    read = next(p for p in files if b"Subject: read me" in p.read_bytes())
    base = read.name.split(":2,")[0]
    read.rename(read.parent.parent / "cur" / f"{base}:2,S")
    mbsync.sync()
    flags = server_flags(server)
    uids = {data.split(b"Subject: ")[1].split(b"\r\n")[0]: uid for uid, data in stored(server, BOB)}
    assert b"\\Seen" in flags[uids[b"read me"]], flags
    assert b"\\Seen" not in flags[uids[b"leave me"]], flags


def test_mbsync_pulls_a_server_flag_change_into_the_maildir_name(server, tmp_path):
    deliver(server, message(subject="flag me"))
    mbsync = Mbsync(server, tmp_path)
    mbsync.sync()
    client = imaps(server)
    try:
        client.select("INBOX")
        ok(client.store("1", "+FLAGS", "(\\Flagged \\Seen)"))
    finally:
        client.logout()
    mbsync.sync()
    [path] = mbsync.files("INBOX")
    assert set(maildir_flags(path)) == {"F", "S"}, path.name


def test_mbsync_pushes_a_message_moved_locally_into_that_server_mailbox(server, tmp_path):
    deliver(server, message(subject="to archive"))
    deliver(server, message(subject="stays"))
    mbsync = Mbsync(server, tmp_path)
    mbsync.sync()
    moving = next(p for p in mbsync.files("INBOX") if b"Subject: to archive" in p.read_bytes())
    original = as_stored(moving.read_bytes())
    # A file new to a folder has no UID of that folder in its name yet.
    name = re.sub(r",U=\d+", "", moving.name)
    moving.rename(mbsync.folder("Archive") / "cur" / name)
    mbsync.sync()
    archived = [data for _, data in stored(server, BOB, "Archive")]
    assert [without_tuid(data) for data in archived] == [original]
    inbox = [data for _, data in stored(server, BOB)]
    assert len(inbox) == 1 and b"Subject: stays" in inbox[0], "the moved message stayed in INBOX"


def test_mbsync_pulls_a_server_side_move_into_the_local_folders(server, tmp_path):
    deliver(server, message(subject="moved on the server"))
    mbsync = Mbsync(server, tmp_path)
    mbsync.sync()
    assert len(mbsync.files("INBOX")) == 1
    uid, original = stored(server, BOB)[0]
    client = imaps(server)
    try:
        client.select("INBOX")
        typ, data = client._simple_command("UID", "MOVE", str(uid), "Archive")
        assert typ == "OK", data
    finally:
        client.logout()
    mbsync.sync()
    assert mbsync.files("INBOX") == [], "the message is still in the local INBOX"
    archived = mbsync.files("Archive")
    assert [as_stored(p.read_bytes()) for p in archived] == [original]


def test_mbsync_uploads_a_local_message_and_creates_a_local_folder_on_the_server(server, tmp_path):
    mbsync = Mbsync(server, tmp_path)
    mbsync.sync()
    draft = b"From: bob@example.test\nTo: alice@example.test\nSubject: written offline\n\nhello\n.dot\n"
    (mbsync.folder("Drafts") / "new" / "offline.1.local").write_bytes(draft)
    project = mbsync.folder("Projects")
    for sub in ("cur", "new", "tmp"):
        (project / sub).mkdir(parents=True)
    (project / "new" / "offline.2.local").write_bytes(draft.replace(b"written offline", b"plan"))
    mbsync.sync()
    [uploaded] = [data for _, data in stored(server, BOB, "Drafts")]
    assert without_tuid(uploaded) == draft.replace(b"\n", b"\r\n")
    [planned] = [data for _, data in stored(server, BOB, "Projects")]
    assert b"Subject: plan\r\n" in planned
