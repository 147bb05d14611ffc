"""Notice rendering (connectors): jinja2 templates shipped in this package (``templates/``).

HTML is autoescaped; an undefined variable is an error, so a template and its context cannot drift apart
silently. SMS bodies carry no name or date of birth: only the practice, the amount and the link.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

SUBJECTS = {"statement": "Your statement from {practice}", "reminder": "Payment reminder from {practice}",
            "final_notice": "Final notice from {practice}"}


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


class Templates:
    def __init__(self) -> None:
        self.env = Environment(loader=PackageLoader("connectors.notify", "templates"),
                               autoescape=select_autoescape(["html"]), undefined=StrictUndefined,
                               keep_trailing_newline=True)

    def email(self, kind: str, context: Mapping[str, object]) -> RenderedEmail:
        ctx = {"kind": kind, **context}
        return RenderedEmail(SUBJECTS[kind].format(practice=context["practice"]),
                             self.env.get_template("email.txt").render(ctx),
                             self.env.get_template("email.html").render(ctx))

    def sms(self, kind: str, context: Mapping[str, object]) -> str:
        return self.env.get_template("sms.txt").render({"kind": kind, **context}).strip()

    def page(self, name: str, context: Mapping[str, object]) -> str:
        return self.env.get_template(name).render(context)
