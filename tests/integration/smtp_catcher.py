#!/usr/bin/python3
"""An SMTP server that keeps what it receives, for tests and the quickstart.

Every message is saved in MAILDIR as NNNNNN.eml (the message as received)
and NNNNNN.json (envelope sender, recipients, AUTH login, peer, time).  The
.json is written first and the .eml renamed into place last, so an .eml
that exists is complete.

While the file given by --refuse-file exists, its first line (for example
"451 4.3.0 Try again later") is the answer to every RCPT and DATA.

    smtp_catcher.py --port 2525 --maildir DIR [--refuse-file F] [--auth U:P]
"""

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Catcher:
    def __init__(self, maildir, refuse_file):
        self.maildir = Path(maildir)
        self.refuse_file = Path(refuse_file) if refuse_file else None
        self.seq = max(
            (int(p.stem) for p in self.maildir.glob("*.eml") if p.stem.isdigit()),
            default=0,
        )

    def refusal(self):
        if self.refuse_file is None:
            return None
        try:
            line = self.refuse_file.read_text().splitlines()[0].strip()
        except (FileNotFoundError, IndexError):
            return None
        return line or "550 5.7.1 Refused"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        refusal = self.refusal()
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        refusal = self.refusal()
        if refusal:
            return refusal
        self.seq += 1
        base = self.maildir / f"{self.seq:06d}"
        login = session.login_data
        if isinstance(login, LoginPassword):
            login = login.login.decode(errors="replace")
        elif isinstance(login, bytes):
            login = login.decode(errors="replace")
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "login": login,
            "peer": list(session.peer) if session.peer else None,
            "received_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        base.with_suffix(".json").write_text(json.dumps(meta) + "\n")
        tmp = base.with_suffix(".tmp")
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode()
        tmp.write_bytes(data)
        os.rename(tmp, base.with_suffix(".eml"))
        print(
            f"saved {base.name}.eml from {envelope.mail_from} "
            f"to {', '.join(envelope.rcpt_tos)}",
            flush=True,
        )
        return "250 Message accepted for delivery"


def make_authenticator(user, password):
    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        # Not handled: aiosmtpd answers 235 or 535 itself, and keeps the
        # login for the .json.
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    return authenticator


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--maildir", required=True)
    ap.add_argument("--refuse-file")
    ap.add_argument("--auth", metavar="USER:PASSWORD")
    args = ap.parse_args()

    os.makedirs(args.maildir, exist_ok=True)
    handler = Catcher(args.maildir, args.refuse_file)
    kwargs = {}
    if args.auth:
        user, _, password = args.auth.partition(":")
        kwargs.update(
            authenticator=make_authenticator(user, password),
            auth_required=True,
            auth_require_tls=False,
        )

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(
            lambda: SMTP(
                handler,
                hostname="catcher.test",
                enable_SMTPUTF8=True,
                decode_data=False,
                **kwargs,
            ),
            host=args.host,
            port=args.port,
        )
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, loop.stop)
    print(f"listening on {args.host}:{args.port}, mail in {args.maildir}", flush=True)
    try:
        loop.run_forever()
    finally:
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
