"""Schemathesis hooks for `cargo xtask ci`'s API fuzzing step (xtask/src/fuzz.rs).

Every request carries the internal key and a live bearer token, so that the fuzzer reaches
the handlers behind the auth layer, not only its 401s. The token is issued through
`POST /internal/sessions` and issued again after any 401: a fuzzed logout revokes it.
xtask passes the server's address and the key in TESSERA_FUZZ_URL and TESSERA_FUZZ_INTERNAL_KEY.
"""

import json
import os
import urllib.request

import schemathesis

BASE_URL = os.environ["TESSERA_FUZZ_URL"]
INTERNAL_KEY = os.environ["TESSERA_FUZZ_INTERNAL_KEY"]
# No example or link in docs/openapi.json names this user, so only a fuzzed logout of this very
# token (or a revocation that guesses this id) ends the session the hooks hold.
FUZZ_USER = "schemathesis-fuzzer"


@schemathesis.auth()
class TesseraCredentials:
    """A bearer token for the fuzzing user (cached until a 401) and the internal key."""

    def get(self, case, context):
        request = urllib.request.Request(
            BASE_URL + "/internal/sessions",
            data=json.dumps({"user_id": FUZZ_USER}).encode(),
            headers={"Content-Type": "application/json", "X-Internal-Key": INTERNAL_KEY},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)["token"]

    def set(self, case, token, context):
        if case.headers is None:
            case.headers = {}
        case.headers["Authorization"] = f"Bearer {token}"
        case.headers["X-Internal-Key"] = INTERNAL_KEY
