# Copyright: Moorage maintainers
# Apache License 2.0 (see LICENSE in the Moorage source)
"""The Moorage management API as the modules of moorage.registry use it."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

from ansible.module_utils.urls import open_url
from ansible.module_utils.six.moves.urllib.error import HTTPError

CONNECTION_ARGS = dict(
    url=dict(type="str", required=True),
    username=dict(type="str", required=True),
    password=dict(type="str", required=True, no_log=True),
    validate_certs=dict(type="bool", default=True),
    timeout=dict(type="int", default=30),
)


class MoorageError(Exception):
    """An API answer other than the one expected, with its problem details."""

    def __init__(self, method, path, status, problem):
        detail = problem.get("detail") or problem.get("title") or problem
        super().__init__("%s %s answered %s: %s" % (method, path, status, detail))
        self.status = status
        self.problem = problem


def segment(value):
    """One path segment (a project name, a tag), percent-encoded."""
    return quote(str(value), safe="")


def subset(wanted, actual):
    """Whether every value ``wanted`` names equals the one in ``actual`` (recursively)."""
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(
            key in actual and subset(value, actual[key]) for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(actual, list)
            and len(wanted) == len(actual)
            and all(subset(w, a) for w, a in zip(wanted, actual))
        )
    return wanted == actual


class MoorageClient:
    """JSON requests with HTTP Basic credentials; errors raise :class:`MoorageError`."""

    def __init__(self, module):
        params = module.params
        self.base = params["url"].rstrip("/")
        token = "%s:%s" % (params["username"], params["password"])
        self.headers = {
            "Authorization": "Basic " + base64.b64encode(token.encode()).decode(),
            "Accept": "application/json",
        }
        self.validate_certs = params["validate_certs"]
        self.timeout = params["timeout"]

    def call(self, method, path, body=None, missing_ok=False):
        """The decoded JSON answer; ``None`` for 204, or for 404 when ``missing_ok``."""
        return self._send(method, path, body, missing_ok)[0]

    def _send(self, method, path, body=None, missing_ok=False):
        data = None
        headers = dict(self.headers)
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            response = open_url(
                self.base + path,
                method=method,
                data=data,
                headers=headers,
                validate_certs=self.validate_certs,
                timeout=self.timeout,
                follow_redirects="none",
            )
        except HTTPError as error:
            if error.code == 404 and missing_ok:
                return None, {}
            raw = error.read()
            try:
                problem = json.loads(raw)
            except ValueError:
                problem = {"detail": raw.decode("utf-8", "replace")[:500]}
            raise MoorageError(method, path, error.code, problem)
        raw = response.read()
        return (json.loads(raw) if raw else None), response.headers

    def pages(self, path, missing_ok=False):
        """Every item of a paginated list: follows ``Link: <...>; rel="next"``, or else
        the body's ``next`` as the ``last`` parameter; ``None`` for 404 when ``missing_ok``."""
        items = []
        target = path + "?limit=100"
        for _page in range(100000):
            page, headers = self._send("GET", target, missing_ok=missing_ok)
            if page is None:
                return None
            items.extend(page["items"])
            link = _next_link(headers.get("Link") or "")
            if link:
                target = link[len(self.base):] if link.startswith(self.base) else link
            elif page.get("next"):
                target = path + "?limit=100&last=" + quote(str(page["next"]), safe="")
            else:
                return items
        raise MoorageError("GET", path, 0, {"detail": "pagination did not end"})


def _next_link(header):
    for part in header.split(","):
        if 'rel="next"' in part and "<" in part and ">" in part:
            return part[part.index("<") + 1:part.index(">")]
    return None


def ensure_document(module, client, path, wanted, view=None, compare=subset):
    """Make the document at ``path`` (GET and PUT) match ``wanted``; exit the module.

    ``compare(wanted, current)`` decides whether a change is needed (by default: every
    value ``wanted`` names equals the stored one); ``view`` picks what a diff shows.
    """
    view = view or (lambda document: document)
    try:
        # In check mode the project may be one an earlier task would have created.
        current = client.call("GET", path, missing_ok=module.check_mode) or {}
        after = current
        changed = not compare(wanted, current)
        if changed:
            after = wanted if module.check_mode else client.call("PUT", path, wanted)
    except MoorageError as error:
        module.fail_json(msg=str(error), status=error.status, problem=error.problem)
    result = dict(changed=changed, document=after)
    if module._diff:
        result["diff"] = dict(before=view(current), after=view(after))
    module.exit_json(**result)


def run_rules_module(kind):
    """The whole of a project rules module (``immutability``, ``retention``): the rule
    list given replaces the project's ``kind`` document."""
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec=dict(
            CONNECTION_ARGS,
            project=dict(type="str", required=True),
            rules=dict(type="list", elements="dict", required=True),
        ),
        supports_check_mode=True,
    )
    path = "/api/v1/projects/%s/%s" % (segment(module.params["project"]), kind)
    ensure_document(module, MoorageClient(module), path, {"rules": module.params["rules"]})
