#!/usr/bin/env python3
"""ffi_dispatch.py -- drive a cstack database from Python through the JSON
envelope, using nothing but the standard library (ctypes, json).

The whole database is reached through one C function,

    int cstack_envelope_call(cstack *db, const char *request, size_t len,
                             char **response, size_t *response_len);

plus cstack_free() for the response (docs/envelope.md).  Opening the database
uses cstack_schema_load(), cstack_open() and cstack_bootstrap().  The program
creates, queries, updates and deletes rows, runs a transaction, watches a
query (cstack_watch_envelope: its response again after each commit that
changes it, docs/live.md), and shows the err envelopes that bad input gets.  It checks every answer and exits 1 if one
is not what the envelope documents.

usage: ffi_dispatch.py [--lib path/to/libcstack.so] [--schema FILE]

Without --lib the library is taken from $CSTACK_LIB, else from build/ of
this repository (the plain build of `make`; never build-asan/, whose library
needs the sanitizer runtime loaded first), else the installed one: the libdir
of `pkg-config cstack`, then the system's search path
(ctypes.util.find_library).
"""
import argparse
import ctypes
import ctypes.util
import json
import os
import queue
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


class CstackError(Exception):
    pass


# void (*cstack_watch_cb)(void *ctx, const char *response, size_t len)
WATCH_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)


class Watch:
    """A live query: every response (the first at once, then one per change)
    lands in self.responses, decoded.  The runtime calls back from its own
    delivery thread; ctypes takes the GIL for it."""

    def __init__(self, db, model, kind, payload=None, throttle_ms=-1):
        self.lib, self.responses = db.lib, queue.Queue()

        def deliver(_ctx, response, length):
            # The bytes are valid only during the call: copy them out.
            self.responses.put(json.loads(ctypes.string_at(response, length)))

        self.callback = WATCH_CB(deliver)  # keep it alive as long as the watch
        request = {"model": model, "kind": kind}
        if payload is not None:
            request["payload"] = payload
        body, handle = json.dumps(request).encode(), ctypes.c_void_p()
        rc = self.lib.cstack_watch_envelope(db.db, body, len(body), throttle_ms, self.callback,
                                            None, ctypes.byref(handle))
        if rc != 0:
            raise CstackError(self.lib.cstack_errmsg(db.db).decode())
        self.handle = handle

    def next(self, timeout=5.0):
        return self.responses.get(timeout=timeout)

    def stop(self):
        """After it returns the callback is never called again."""
        if self.handle:
            self.lib.cstack_watch_stop(self.handle)
            self.handle = None


class Database:
    """One open database; call() sends an envelope request."""

    def __init__(self, lib_path, schema_path, db_path):
        lib = ctypes.CDLL(lib_path)
        vp, vpp = ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)
        sig = {
            "cstack_schema_load": (ctypes.c_int, [ctypes.c_char_p, vpp, vpp]),
            "cstack_schema_free": (None, [vp]),
            "cstack_diags_format": (vp, [vp]),
            "cstack_diags_free": (None, [vp]),
            "cstack_open": (ctypes.c_int, [vp, ctypes.c_char_p, vp, vpp]),
            "cstack_bootstrap": (ctypes.c_int, [vp, vpp]),
            "cstack_close": (None, [vp]),
            "cstack_errmsg": (ctypes.c_char_p, [vp]),
            "cstack_free": (None, [vp]),
            "cstack_version": (ctypes.c_char_p, []),
            "cstack_envelope_call": (
                ctypes.c_int,
                [vp, ctypes.c_char_p, ctypes.c_size_t, vpp, ctypes.POINTER(ctypes.c_size_t)],
            ),
            "cstack_watch_envelope": (
                ctypes.c_int,
                [vp, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int, WATCH_CB, vp, vpp],
            ),
            "cstack_watch_stop": (None, [vp]),
        }
        for name, (restype, argtypes) in sig.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
        self.lib, self.db = lib, None

        schema, diags = ctypes.c_void_p(), ctypes.c_void_p()
        rc = lib.cstack_schema_load(schema_path.encode(), ctypes.byref(schema), ctypes.byref(diags))
        if rc != 0:
            text = lib.cstack_diags_format(diags)
            message = ctypes.string_at(text).decode() if text else "schema error"
            lib.cstack_free(text)
            lib.cstack_diags_free(diags)
            raise CstackError(message)
        lib.cstack_diags_free(diags)
        db = ctypes.c_void_p()
        rc = lib.cstack_open(schema, db_path.encode(), None, ctypes.byref(db))
        lib.cstack_schema_free(schema)  # the runtime keeps its own reference
        self.db = db
        if rc == 0:
            rc = lib.cstack_bootstrap(db, None)
        if rc != 0:
            message = lib.cstack_errmsg(db).decode() if db else "out of memory"
            self.close()
            raise CstackError(message)

    def close(self):
        if self.db:
            self.lib.cstack_close(self.db)
            self.db = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def raw(self, request):
        """Sends request bytes as they are; returns the response text."""
        response, length = ctypes.c_void_p(), ctypes.c_size_t()
        rc = self.lib.cstack_envelope_call(
            self.db, request, len(request), ctypes.byref(response), ctypes.byref(length))
        if rc != 0:
            raise CstackError("no response at all (code %d)" % rc)
        try:
            return ctypes.string_at(response, length.value).decode()
        finally:
            self.lib.cstack_free(response)

    def call(self, model, kind, payload=None):
        request = {"kind": kind}
        if model is not None:
            request["model"] = model
        if payload is not None:
            request["payload"] = payload
        return json.loads(self.raw(json.dumps(request).encode()))


FAILURES = []


def show(label, response):
    text = json.dumps(response)
    print("  %-22s %s" % (label, text if len(text) <= 150 else text[:147] + "..."))


def ok(label, response):
    """Checks the ok shape and returns its data."""
    show(label, response)
    if set(response) != {"status", "data"} or response["status"] != "ok":
        FAILURES.append("%s: expected an ok envelope, got %s" % (label, response))
        return None
    return response["data"]


def err(label, response, code, fragment):
    """Checks the err shape, its code and that the message names `fragment`."""
    show(label, response)
    shape = set(response) == {"status", "code", "message"} and response["status"] == "err"
    if not shape or response["code"] != code or fragment not in response["message"]:
        FAILURES.append("%s: expected err %s mentioning %r, got %s" % (label, code, fragment, response))


def expect(label, condition):
    if not condition:
        FAILURES.append(label)


def crud(db):
    print("create, read, update, delete:")
    account = ok("create Account", db.call("Account", "create", {"data": {"email": "ada@example.com"}}))
    owner = account["id"]
    note = ok("create Note", db.call("Note", "create", {"data": {
        "title": "Groceries", "ownerId": owner.upper(), "price": "0.10", "tags": {"list": ["milk"]},
        "blob": "aGVsbG8=", "due": "2026-12-01T09:00:00+01:00"}}))
    expect("Uuid comes back lowercase", note["ownerId"] == owner)
    expect("DateTime comes back in UTC", note["due"] == "2026-12-01T08:00:00.000000Z")
    expect("Bytes round-trip as base64", note["blob"] == "aGVsbG8=")
    ok("create_many Note", db.call("Note", "create_many", {"data": [
        {"title": "Rent", "ownerId": owner, "price": "0.20"},
        {"title": "Books", "ownerId": owner, "status": "DONE"}]}))
    rows = ok("find_many", db.call("Note", "find_many", {
        "where": {"price": {"not": None}}, "orderBy": [{"field": "title", "direction": "desc"}],
        "select": ["title", "price"]}))
    expect("find_many filters and orders", [r["title"] for r in rows] == ["Rent", "Groceries"])
    total = ok("aggregate _sum price", db.call("Note", "aggregate", {"_sum": ["price"]}))
    expect("0.10 + 0.20 is exactly 0.30", total["_sum"]["price"] == "0.30")
    updated = ok("update (partial)", db.call("Note", "update", {
        "where": {"ownerId": owner, "title": "Rent"}, "data": {"status": "DONE"}}))
    expect("update changes only what it sets", updated["price"] == "0.20" and updated["status"] == "DONE")
    count = ok("count DONE", db.call("Note", "count", {"where": {"status": "DONE"}}))
    expect("two notes are DONE", count == {"count": 2})
    some = ok("relation filter", db.call("Account", "count", {
        "where": {"notes": {"some": {"title": {"startsWith": "groc", "mode": "insensitive"}}}}}))
    expect("the account has a groceries note", some == {"count": 1})
    deleted = ok("delete", db.call("Note", "delete", {"where": {"id": note["id"]}}))
    expect("delete returns the row", deleted["title"] == "Groceries")
    gone = ok("find_unique deleted", db.call("Note", "find_unique", {"where": {"id": note["id"]}}))
    expect("a deleted row is gone", gone is None)
    return owner


def transactions(db, owner):
    print("transactions:")
    data = ok("transaction", db.call(None, "transaction", {"requests": [
        {"model": "Note", "kind": "create", "payload": {"data": {"title": "T1", "ownerId": owner}}},
        {"model": "Note", "kind": "count"}]}))
    expect("a transaction returns each request's data", data[1] == {"count": 3})
    err("transaction rolled back", db.call(None, "transaction", {"requests": [
        {"model": "Note", "kind": "create", "payload": {"data": {"title": "T2", "ownerId": owner}}},
        {"model": "Note", "kind": "create", "payload": {"data": {"title": "T1", "ownerId": owner}}}]}),
        "unique_violation", "requests[1]")
    count = ok("count after rollback", db.call("Note", "count"))
    expect("nothing of the failed transaction was written", count == {"count": 3})


def live_queries(db, owner):
    print("live queries (watch a request, get its response again when it changes):")
    groups = Watch(db, "Note", "group_by", {"by": ["status"], "_count": True}, throttle_ms=0)
    first = ok("watch group_by status", groups.next())
    expect("the first response comes at once", first == [
        {"status": "DONE", "_count": 2}, {"status": "OPEN", "_count": 1}])
    ok("update status", db.call("Note", "update", {
        "where": {"ownerId": owner, "title": "T1"}, "data": {"status": "DONE"}}))
    changed = ok("  -> delivered", groups.next())
    expect("the watch delivers the changed groups", changed == [{"status": "DONE", "_count": 3}])
    ok("update price only", db.call("Note", "update", {
        "where": {"ownerId": owner, "title": "T1"}, "data": {"price": "1.00"}}))
    time.sleep(0.1)  # the watch re-runs (its table changed) but its result did not
    groups.stop()
    expect("an unchanged result is not delivered again", groups.responses.empty())
    try:
        Watch(db, "Note", "delete_many")
        FAILURES.append("a watch of a write request was accepted")
    except CstackError as e:
        print("  %-22s refused: %s" % ("watch delete_many", e))


def errors(db, owner):
    print("bad input gets err envelopes:")
    err("not JSON", json.loads(db.raw(b'{"model": "Note",')), "bad_request", "not valid JSON")
    err("unknown model", db.call("Nope", "count"), "bad_request", "unknown model 'Nope'")
    err("unknown kind", db.call("Note", "find_any"), "bad_request", "unknown kind")
    err("unknown field", db.call("Note", "find_many", {"where": {"titel": "x"}}),
        "bad_request", "payload.where.titel")
    err("bad operator", db.call("Note", "find_many", {"where": {"price": {"gtx": "1"}}}),
        "bad_request", "payload.where.price.gtx")
    err("invalid Uuid", db.call("Note", "create", {"data": {"title": "x", "ownerId": "not-a-uuid"}}),
        "validation", "payload.data.ownerId")
    err("Decimal as a float", db.call("Note", "find_many", {"where": {"price": {"gt": 9.99}}}),
        "validation", "payload.where.price.gt")
    err("missing field", db.call("Note", "create", {"data": {"ownerId": owner}}), "required", "title")
    err("not found", db.call("Note", "update", {"where": {"id": owner}, "data": {"title": "y"}}),
        "not_found", "payload.where")
    err("duplicate", db.call("Account", "create", {"data": {"email": "ada@example.com"}}),
        "unique_violation", "Account.email")


def installed_library():
    """libcstack.so of an install (docs/install.md), or None."""
    try:
        libdir = subprocess.run(["pkg-config", "--variable=libdir", "cstack"], check=True,
                                capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        libdir = ""
    path = os.path.normpath(os.path.join(libdir, "libcstack.so")) if libdir else ""
    if path and os.path.exists(path):
        return path
    return ctypes.util.find_library("cstack")


def find_library(given):
    if given:
        return given
    if os.environ.get("CSTACK_LIB"):
        return os.environ["CSTACK_LIB"]
    built = os.path.join(REPO, "build", "libcstack.so")
    if os.path.exists(built):
        return built
    found = installed_library()
    if not found:
        sys.exit("ffi_dispatch: libcstack.so not found: run `make` (build/libcstack.so), "
                 "install cstack (docs/install.md) or pass --lib")
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lib", help="path to libcstack.so")
    parser.add_argument("--schema", default=os.path.join(HERE, "ffi_dispatch.cstack"))
    args = parser.parse_args()
    lib = find_library(args.lib)
    with tempfile.TemporaryDirectory(prefix="cstack-ffi-") as tmp:
        print("ffi_dispatch: %s, database in %s" % (lib, tmp))
        with Database(lib, args.schema, os.path.join(tmp, "notes.db")) as db:
            print("ffi_dispatch: libcstack %s" % db.lib.cstack_version().decode())
            owner = crud(db)
            transactions(db, owner)
            live_queries(db, owner)
            errors(db, owner)
    for failure in FAILURES:
        print("FAILED: " + failure, file=sys.stderr)
    print("ffi_dispatch: %s" % ("FAILED" if FAILURES else "ok"))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
