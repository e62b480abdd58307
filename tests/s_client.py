"""`openssl s_client` against a port: one-shot runs and an interactive session."""

import queue
import subprocess
import threading
import time

from pki import pem_fingerprint, require_openssl

TIMEOUT = 20


class Run:
    def __init__(self, args, returncode, output):
        self.args = args
        self.returncode = returncode
        self.output = output

    @property
    def ok(self):
        return self.returncode == 0

    def __repr__(self):
        return f"openssl {' '.join(self.args)} -> {self.returncode}\n{self.output[-3000:]}"

    def protocol(self):
        for line in self.output.splitlines():
            line = line.strip()
            if line.startswith("Protocol  :") or line.startswith("Protocol version:"):
                return line.split(":", 1)[1].strip()
            if line.startswith("New, ") and ", Cipher is " in line:
                return line.split(",")[1].strip()
        return None

    def fingerprint(self):
        return pem_fingerprint(self.output)

    def verified(self):
        return "Verify return code: 0 (ok)" in self.output or "Verification: OK" in self.output


def args_for(port, starttls=True, ca=None, verify_hostname="localhost", servername="localhost",
             extra=()):
    args = ["s_client", "-connect", f"127.0.0.1:{port}"]
    if starttls:
        args += ["-starttls", "smtp"]
    if ca is not None:
        args += ["-CAfile", str(ca), "-verify_return_error"]
        if verify_hostname:
            args += ["-verify_hostname", verify_hostname]
    if servername:
        args += ["-servername", servername]
    else:
        args += ["-noservername"]
    return args + list(extra)


def run(port, *extra, starttls=True, ca=None, verify_hostname="localhost", servername="localhost",
        input=b"QUIT\r\n", timeout=TIMEOUT) -> Run:
    require_openssl()
    args = args_for(port, starttls, ca, verify_hostname, servername, extra)
    result = subprocess.run(["openssl", *args], input=input, capture_output=True, timeout=timeout)
    output = result.stdout.decode(errors="replace") + "\n" + result.stderr.decode(errors="replace")
    return Run(args, result.returncode, output)


class Interactive:
    """s_client kept open: write lines, wait for text in its output."""

    def __init__(self, port, *extra, starttls=True, ca=None, verify_hostname="localhost",
                 servername="localhost"):
        require_openssl()
        self.args = args_for(port, starttls, ca, verify_hostname, servername, ("-ign_eof", *extra))
        self.proc = subprocess.Popen(["openssl", *self.args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.output = ""
        self._chunks = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        while True:
            chunk = self.proc.stdout.read1(65536)
            if not chunk:
                self._chunks.put(None)
                return
            self._chunks.put(chunk.decode(errors="replace"))

    def wait_for(self, text, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while text not in self.output:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {text!r} from openssl {' '.join(self.args)} in {timeout}s:\n"
                                     f"{self.output[-3000:]}")
            try:
                chunk = self._chunks.get(timeout=remaining)
            except queue.Empty:
                continue
            if chunk is None:
                raise AssertionError(f"s_client exited before {text!r}:\n{self.output[-3000:]}")
            self.output += chunk
        return self.output

    def send(self, line):
        self.proc.stdin.write(line.encode() + b"\r\n")
        self.proc.stdin.flush()

    def finish(self, timeout=TIMEOUT) -> Run:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        while True:
            try:
                chunk = self._chunks.get(timeout=5)
            except queue.Empty:
                break
            if chunk is None:
                break
            self.output += chunk
        return Run(self.args, self.proc.returncode, self.output)
