"""Exploring single questions (notebook 07): every strategy's ranking side by side, and a widget to play with.

`explore` runs dense, BM25, hybrid and reranked retrieval for one question and returns an `Exploration`, one
table with a column block per strategy; `disagreements` ranks the labelled questions by how differently two
strategies place their relevant passage; `Explorer` (ipywidgets) puts both behind a question box.
"""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from helpers.chunking import Passage
from helpers.evaluate import Question
from helpers.pipeline import _ms
from helpers.setup import STAND_IN_LABEL

if TYPE_CHECKING:
    import pandas as pd

    from helpers.pipeline import RAG

STRATEGIES = ("dense", "bm25", "hybrid", "reranked")
DEPTH = 10  # each strategy ranks this many passages (RR@10, as 06's MRR@10); reranking reorders dense's 10
SNIPPET_CHARS = 90
STOP = "a an and are as at be by can do does for from how i in is it my of on or the to what when where which"
STOPWORDS = frozenset(f"{STOP} who why will with you your this that there".split())  # never highlighted


def question_terms(question: str) -> list[str]:
    """The question's words worth highlighting: lower case, three letters or more, no stop words."""
    words = re.findall(r"\w+", question.lower())
    return list(dict.fromkeys(w for w in words if len(w) >= 3 and w not in STOPWORDS))


def snippet(passage: Passage, terms: list[str], width: int = SNIPPET_CHARS) -> str:
    """One line of the passage's body, starting a little before the first question word it contains."""
    body = " ".join(passage.text.split())
    body = body.removeprefix(heading(passage)).strip()  # the heading has its own column
    found = [m.start() for t in terms if (m := re.search(rf"\b{re.escape(t)}", body, re.IGNORECASE))]
    start = max(0, min(found) - 20) if found else 0
    if start:
        start = body.find(" ", start) + 1 or start
    text = ("…" if start else "") + body[start : start + width]
    return text + ("…" if start + width < len(body) else "")


def heading(passage: Passage) -> str:
    """The passage's own heading: the last part of its title ("Product FAQ > Where ..." -> "Where ...")."""
    return passage.title.split(" > ")[-1]


def highlight(text: str, terms: list[str], marks: tuple[str, str] = ("**", "**")) -> str:
    """`text` with every word that starts with a question term wrapped in `marks`."""
    if not terms:
        return text
    pattern = re.compile(rf"\b(?:{'|'.join(map(re.escape, terms))})\w*", re.IGNORECASE)
    return pattern.sub(lambda m: f"{marks[0]}{m.group(0)}{marks[1]}", text)


@dataclass
class Exploration:
    """One question's rankings under each strategy, its relevance labels and the stage timings."""

    question: str
    k: int
    hits: dict[str, list[Passage]]  # per strategy, DEPTH deep, in rank order
    relevant: tuple[str, ...] = ()  # the labelled question's `relevant` strings (empty: not labelled)
    was: dict[str, int] = field(default_factory=dict)  # passage id -> its dense rank before reranking
    timings_ms: dict[str, float] = field(default_factory=dict)
    reranker: str = ""

    def is_relevant(self, passage: Passage) -> bool:
        """True when the passage holds one of the question's relevant strings (as `build_qrels` decides)."""
        return any(r in passage.text for r in self.relevant)

    def rank(self, strategy: str) -> int | None:
        """Rank (1-based) of the first relevant passage in the strategy's top DEPTH; None when absent."""
        return next((n for n, h in enumerate(self.hits[strategy], 1) if self.is_relevant(h)), None)

    def reciprocal_rank(self, strategy: str) -> float | None:
        """1/rank of the first relevant passage in the top DEPTH (0: absent); None when not labelled."""
        if not self.relevant:
            return None
        rank = self.rank(strategy)
        return 1.0 / rank if rank else 0.0

    def rows(self, strategy: str) -> list[dict]:
        """A strategy's top k: rank, relevance mark, score, heading, snippet (reranked: the rank it `was`)."""
        terms, rows = question_terms(self.question), []
        for n, hit in enumerate(self.hits[strategy][: self.k], start=1):
            score = hit.rerank_score if strategy == "reranked" else hit.score
            rows.append(
                {"rank": n, "✓": "✓" * self.is_relevant(hit), "score": score, "heading": heading(hit)}
            )
            rows[-1]["snippet"] = snippet(hit, terms)
            if strategy == "reranked":
                rows[-1]["was"] = self.was[hit.id]
        return rows

    def table(self) -> pd.DataFrame:
        """The top k of each strategy as a DataFrame: a column block per strategy, one row per rank."""
        import pandas as pd

        return pd.concat({s: pd.DataFrame(self.rows(s)).set_index("rank") for s in self.hits}, axis=1)

    def summary(self) -> str:
        """RR@10 per strategy (when labelled) and the stage timings, one line each."""
        lines = []
        if self.relevant:
            ranks = {s: f"rank {r}" if (r := self.rank(s)) else f"not in top {DEPTH}" for s in self.hits}
            parts = [f"{s} {self.reciprocal_rank(s):.3f} ({ranks[s]})" for s in self.hits]
            lines.append(f"RR@{DEPTH}: " + " · ".join(parts))
        lines.append("time: " + " · ".join(f"{stage} {ms:.1f} ms" for stage, ms in self.timings_ms.items()))
        return "\n".join(lines)

    def __repr__(self) -> str:
        terms, lines = question_terms(self.question), [f"Question: {self.question}"]
        for strategy in self.hits:
            lines.append(strategy + (f" ({self.reranker})" if strategy == "reranked" else ""))
            for r in self.rows(strategy):
                was, text = f" (was {r['was']})" if "was" in r else "", highlight(r["snippet"], terms)
                lines += [
                    f"{r['rank']:>3} {r['✓'] or ' '} {r['score']:8.4f}  {r['heading']}{was}",
                    f"{'':8}{text}",
                ]
        return "\n".join([*lines, self.summary()])

    def _repr_html_(self) -> str:
        terms, head = question_terms(self.question), "".join(f"<th>{html.escape(s)}</th>" for s in self.hits)
        columns = [[self._cell(r, terms) for r in self.rows(s)] for s in self.hits]
        cells = ("".join(c[n] if n < len(c) else "<td></td>" for c in columns) for n in range(self.k))
        body = "".join(f"<tr><td>{n}</td>{row}</tr>" for n, row in enumerate(cells, start=1))
        summary = html.escape(self.summary()).replace("\n", "<br>")
        return (
            f"<div class='rag-explore'><style>{CSS}</style><table><col style='width:3.5em'>"
            f"<thead><tr><th>rank</th>{head}</tr></thead><tbody>{body}</tbody></table><div>{summary}</div></div>"
        )

    @staticmethod
    def _cell(row: dict, terms: list[str]) -> str:
        mark = "<span class='rel' title='labelled relevant'>✓</span> " if row["✓"] else ""
        was = f" <span class='was'>was {row['was']}</span>" if "was" in row else ""
        text = highlight(html.escape(row["snippet"]), terms, ("<mark>", "</mark>"))
        return (
            f"<td class='{'hit rel-row' if mark else 'hit'}'>{mark}<b>{html.escape(row['heading'])}</b> "
            f"<span class='score'>{row['score']:.4f}</span>{was}<br><span class='snip'>{text}</span></td>"
        )


CSS = """
.rag-explore {line-height: 1.35} .rag-explore table {border-collapse: collapse; table-layout: fixed}
.rag-explore table {width: 100%} .rag-explore td, .rag-explore th {border: 1px solid #ddd; padding: 4px}
.rag-explore td, .rag-explore th {vertical-align: top; text-align: left !important}
.rag-explore .snip {color: #555; font-size: 90%} .rag-explore .score, .rag-explore .was {color: #888}
.rag-explore .rel {color: #080; font-weight: bold} .rag-explore .rel-row {background: #efe}
"""


def reranker_status(rag: RAG) -> tuple[str, str]:
    """(`which` reranker to ask `rag` for, "") where a trained one runs; else ("", the reason in one line)."""
    which = rag.resolve_reranker("auto")
    if which != "none":
        return which, ""
    return "", (
        f"Reranked is off: this kit's only reranker is a {STAND_IN_LABEL}, whose order means nothing. "
        "Set RAG_MODELS=qwen3 (internet once) or RAG_RERANK_URL to rerank."
    )


def labels_for(question: str, questions: list[Question]) -> tuple[str, ...]:
    """The `relevant` strings of the labelled question with this text (case and spaces ignored), else ()."""
    key = " ".join(question.split()).casefold()
    return next((q.relevant for q in questions if " ".join(q.query.split()).casefold() == key), ())


def explore(
    rag: RAG,
    question: str,
    strategies: tuple[str, ...] = ("dense", "bm25", "hybrid"),
    k: int = 5,
    instruction: str | None = None,
    relevant: tuple[str, ...] = (),
) -> Exploration:
    """Rank `question` by each strategy, DEPTH deep (reranked: dense's DEPTH reordered), timing each stage."""
    if not strategies or not set(strategies) <= set(STRATEGIES):
        got = ", ".join(strategies) or "none"
        raise ValueError(f"Choose strategies among {', '.join(STRATEGIES)} (got {got}).")
    if not 1 <= k <= DEPTH:
        raise ValueError(f"top-k must be between 1 and {DEPTH} (got {k}).")
    question = rag._question(" ".join((question or "").split()))  # refused when empty, cut when overlong
    which = ""
    if "reranked" in strategies:
        which, why = reranker_status(rag)
        if not which:
            raise ValueError(why)
    t0, timings, hits, vector = time.perf_counter(), {}, {}, None
    rag.prepare(which or "none")
    if set(strategies) - {"bm25"}:
        rag.ensure_index()
        t = time.perf_counter()
        vector = rag.embedder.encode_queries([question], instruction)[0]
        timings["embed query"] = _ms(t)
    for mode in dict.fromkeys("dense" if s == "reranked" else s for s in strategies):
        t = time.perf_counter()
        hits[mode] = rag.store.search(mode, vector, question, DEPTH)
        timings[mode] = _ms(t)
    was, label = {}, ""
    if which:
        t, reranker = time.perf_counter(), rag.reranker(which)
        hits["reranked"] = reranker.rerank(question, hits["dense"], instruction=instruction)
        timings["rerank"] = _ms(t)
        was = {h.id: n for n, h in enumerate(hits["dense"], 1)}
        label = reranker.model_id + (f": {STAND_IN_LABEL}" if reranker.is_stand_in else "")
    timings["total"] = _ms(t0)
    return Exploration(question, k, {s: hits[s] for s in strategies}, tuple(relevant), was, timings, label)


def disagreements(rag: RAG, questions: list[Question], a: str, b: str, progress=None) -> pd.DataFrame:
    """Labelled questions by |RR@10 under `a` - under `b`|, largest first, with language and both ranks."""
    import pandas as pd

    rows = []
    for n, q in enumerate(questions):
        if progress is not None:
            progress(n, len(questions))
        found = explore(rag, q.query, tuple(dict.fromkeys((a, b))), 1, relevant=q.relevant)
        ranks = {f"{s} rank": found.rank(s) or f">{DEPTH}" for s in (a, b)}
        gap = found.reciprocal_rank(a) - found.reciprocal_rank(b)  # > 0: `a` ranks it higher
        rows.append({"question": q.query, "lang": q.lang, **ranks, "RR difference": gap, "line": q.line})
    table = pd.DataFrame(rows)
    order = table["RR difference"].abs().sort_values(ascending=False, kind="stable").index
    return table.loc[order].reset_index(drop=True)


def one_line(exc: BaseException) -> str:
    """An error as one line (as the CLI prints it), named by its kind unless it is one of the course's own."""
    message = " ".join(str(exc).split())
    ours = isinstance(exc, ValueError) or "helpers" in type(exc).__module__
    return message if ours and message else f"{type(exc).__name__}: {message}".rstrip(": ")


class Explorer:
    """The explorer (ipywidgets): a question box, the labelled questions, strategies, top-k, instruction."""

    def __init__(self, rag: RAG, questions: list[Question], k: int = 5):
        import ipywidgets as w

        self.rag, self.questions, self.last = rag, questions, None
        which, why = reranker_status(rag)
        self.available = [s for s in STRATEGIES if s != "reranked" or which]
        wide, ask = w.Layout(width="75%"), "Type a question, press Enter"
        self.question = w.Text(placeholder=ask, continuous_update=False, layout=wide)
        self.search = w.Button(description="Search", button_style="primary")
        options = [(f"[{q.lang}] {q.query}", q.line) for q in questions]
        self.labelled = w.Dropdown(options=[("(pick a labelled question)", 0), *options], layout=wide)
        self.toggles = {
            s: w.ToggleButton(value=s in self.available[:3], description=s, disabled=s not in self.available)
            for s in STRATEGIES
        }
        self.top_k = w.IntSlider(value=k, min=1, max=DEPTH, description="top-k")
        try:
            aware, failed = rag.embedder.instruction_aware, ""
        except Exception as exc:  # the model cannot be loaded: say so once the widget shows
            aware, failed = False, one_line(exc)
        hint = "default: the model card's task" if aware else f"{rag.choice.embedding_model} reads none"
        self.instruction = w.Text(
            placeholder=hint, description="instruction", disabled=not aware, layout=w.Layout(width="55%")
        )
        self.note, self.table, self.status = w.HTML(why), w.HTML(), w.HTML()
        self.a = w.Dropdown(options=self.available, value="dense", description="compare")
        self.b = w.Dropdown(options=self.available, value="bm25", description="with")
        self.compare = w.Button(description="Rank the labelled questions")
        self.ranked = w.Select(options=[], rows=12, layout=w.Layout(width="98%"))
        self.question.observe(self.run, names="value")
        self.search.on_click(self.run)
        self.labelled.observe(lambda change: self.load(change["new"]), names="value")
        for control in (*self.toggles.values(), self.top_k, self.instruction):
            control.observe(lambda _: self.question.value.strip() and self.run(), names="value")
        self.compare.on_click(self.rank_questions)
        self.ranked.observe(lambda change: self.load(change["new"]), names="value")
        explore_tab = w.VBox(
            [w.HBox([self.question, self.search]), self.labelled, w.HBox(list(self.toggles.values())),
             self.note, w.HBox([self.top_k, self.instruction]), self.table, self.status]
        )  # fmt: skip
        compare_tab = w.VBox([w.HBox([self.a, self.b, self.compare]), self.ranked])
        self.ui = w.Tab([explore_tab, compare_tab], titles=("Explore", "Disagreements"))
        if failed:
            self.show(failed, error=True)

    def _repr_mimebundle_(self, **kwargs) -> dict:
        """The widget, and for a reader without a kernel (GitHub, nbconvert) one line instead of its repr."""
        return self.ui._repr_mimebundle_(**kwargs) | {
            "text/plain": "(the explorer: run the notebook to use it)"
        }

    def show(self, message: str, error: bool = False) -> None:
        """One line under the table: what ran and how long, or what went wrong (in red)."""
        style = "color:#b00;font-weight:bold" if error else "color:#444"
        self.status.value = f"<div style='{style}'>{'⚠ ' * error}{html.escape(message)}</div>"

    def run(self, *_) -> None:
        """Explore the question in the box with the chosen strategies; on failure, one line and no table."""
        chosen = tuple(s for s, toggle in self.toggles.items() if toggle.value and not toggle.disabled)
        relevant = labels_for(self.question.value, self.questions)
        try:
            task = self.instruction.value.strip() or None
            self.last = explore(self.rag, self.question.value, chosen, self.top_k.value, task, relevant)
        except Exception as exc:  # a widget shows one line, never a traceback
            self.last, self.table.value = None, ""
            return self.show(one_line(exc), error=True)
        self.table.value = self.last._repr_html_()
        self.show(
            "labelled question: ✓ marks its relevant passages" if relevant else "not a labelled question"
        )

    def load(self, line: int) -> None:
        """Put labelled question `line` in the box and explore it (0: nothing chosen)."""
        found = next((q for q in self.questions if q.line == line), None)
        if found is None:
            return None
        if self.labelled.value != line:
            self.labelled.value = line  # whose observer comes back here
        elif self.question.value != found.query:
            self.question.value = found.query  # whose observer runs it
        else:
            self.run()

    def rank_questions(self, *_) -> None:
        """Fill the second view: labelled questions, the two strategies' most different first."""
        a, b = self.a.value, self.b.value
        try:
            found = disagreements(self.rag, self.questions, a, b, lambda n, t: self.show(f"ranking {n}/{t}"))
        except Exception as exc:
            return self.show(one_line(exc), error=True)
        self.ranked.options = [
            (f"{r['RR difference']:+.2f}  [{r['lang']}] {r['question']}  ({a} {r[f'{a} rank']}, {b} "
             f"{r[f'{b} rank']})", r["line"])
            for r in found.to_dict("records")
        ]  # fmt: skip
        self.show(f"{len(found)} labelled questions, largest |RR@{DEPTH}({a}) - RR@{DEPTH}({b})| first")
