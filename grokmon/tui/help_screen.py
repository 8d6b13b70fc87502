"""HelpScreen: a scrolling modal that teaches the screen: keys, panels, markers, phases, FSD and its p-value,
and where the full definitions live; escape, q or ? closes it. The key and marker rows come from the app
(the intervention registry's); the rest is the words here."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

Rows = list[tuple[str, str]]

PANELS: Rows = [
    ("status: the run", "step / step limit, steps/s, elapsed training time, ETA to the step limit at the "
                        "current speed (a run with train.stop_after_grok may end sooner), `watching` when "
                        "following another process's run, phase, and the run directory: `grokmon watch DIR` "
                        "follows the run from another terminal"),
    ("status: values", "the latest train and val accuracy and loss, FSD and p(FSD) (synchronised or not, from "
                       "memorisation on), weight decay (wd), learning rate (lr)"),
    ("status: events", "t_grok, the FSD detector (online rule), t_fsd (offline ceiling), lead; one not reached "
                       "yet says why, e.g. \"not yet (best val_acc 0.12)\""),
    ("accuracy", "train and val accuracy (fraction of pairs right) against step; the marker letters are "
                 "named under it when there is room"),
    ("loss", "train and val cross-entropy against step, log scale"),
    ("FSD", "FSD (left axis, braille line) and p(FSD) (right axis, log, line of dots) against step; the "
            "horizontal line is alpha on the p axis; o marks a synchronised checkpoint; the title holds the "
            "current FSD and p(FSD), the caption the null the p-value is measured against"),
    ("Fourier frequencies", "bars: the energy share of each frequency k in the embedding W_E's Fourier "
                            "spectrum (v shows the other FSD components: blocks, unembedding W_U); table: "
                            "the top 5 k with their share in % for W_E and for W_L = W_out W_U, and the key "
                            "frequencies"),
    ("progress measures (m)", "in the frequency panel's place: restricted loss (the logits kept to the key "
                              "frequencies) and excluded loss (those frequencies removed), log scale; Gini of "
                              "W_E's and W_L's Fourier norms (how concentrated on few k) and the total weight "
                              "norm scaled to its maximum, 0 to 1; the key frequencies in the title"),
    ("events", "the run's events (interventions, alerts, checkpoints, finish) and the commands you sent"),
]

PHASES: Rows = [
    ("memorisation", "train accuracy rising, val accuracy near chance"),
    ("circuit formation", "train accuracy >= 0.99 while val accuracy is still low: the network has memorised "
                          "the training pairs; the Fourier circuit forms underneath"),
    ("cleanup", "after the FSD detector fired, before grokking"),
    ("generalised", "val accuracy >= 0.95 (after t_grok)"),
]

FSD: Rows = [
    ("FSD", "Frequency Synchronization Degree: how strongly the frequencies used by the input side "
            "(embedding, block outputs) agree with the output side (unembedding)."),
    ("", "0 = chance agreement, 1 = identical top frequencies."),
    ("p(FSD)", "its permutation p-value: how often the agreement is as high when the output side's "
               "frequency labels k are shuffled (the output-label permutation null: metrics.n_perm "
               "permutations, so it is never below 1/(n_perm+1)). Not the task's modulus p."),
    ("synchronised", "a checkpoint with p(FSD) < alpha (metrics.alpha): the two sides share their "
                     "frequencies beyond chance; marked o, and counted, from memorisation on "
                     "(first train accuracy >= 0.99)"),
    ("t_fsd", "the FSD ceiling by the offline rule, over the rows so far: provisional until the run groks"),
    ("detector", "the online rule the engine runs as it trains (cleanup starts there); a different rule from "
                 "t_fsd, so the two steps can differ"),
    ("lead", "t_grok - t_fsd: how many steps before grokking FSD reached its ceiling"),
    ("more", "full definitions and our choices: docs/metrics.md in the repository"),
]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss", "Close", show=False),
        Binding("q", "dismiss", "Close", show=False),
        Binding("question_mark", "dismiss", "Close", show=False),
    ]

    def __init__(self, keys: Rows, markers: Rows | None = None, footer: str = "") -> None:
        super().__init__()
        self.keys = keys
        self.markers = markers or []
        self.footer = footer

    def sections(self) -> list[tuple[str, Rows]]:
        return [("keys", self.keys), ("panels", PANELS), ("markers (vertical lines on the plots)", self.markers),
                ("phases (status: phase)", PHASES), ("FSD and its p-value", FSD)]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(Text.assemble(("grokmon help", "bold"), ": keys, panels, markers, phases, FSD. "
                                       "Arrows and pgup / pgdn scroll; escape, q or ? closes."), id="help-head")
            for title, rows in self.sections():
                yield Static(section(title, rows), classes="help-section")
            if self.footer:
                yield Static(self.footer, id="help-footer", markup=False)

    def on_mount(self) -> None:
        self.query_one("#help-box", VerticalScroll).focus()  # arrows and page keys scroll it

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)


def section(title: str, rows: Rows) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold underline", show_header=False, box=None,
                  padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for key, description in rows:
        table.add_row(key, description)
    return table
