"""orthoreg analytics status|refresh|rebuild: the facts cohort reports read (analytics/facts.py)."""

import json
import time

from django.core.management.base import BaseCommand
from tqdm import tqdm

from orthoreg.analytics import facts
from orthoreg.analytics.models import EpisodeFact, OutcomeFact
from orthoreg.registry.models import Episode


class Command(BaseCommand):
    help = ("The analytics facts behind cohort reports: 'status' counts them and the episodes waiting to be "
            "rebuilt, 'refresh' rebuilds those, 'rebuild' recomputes everything from the clinical records.")

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["status", "refresh", "rebuild"])
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, action, no_progress, **options):
        started = time.perf_counter()
        if action != "status":
            if action == "refresh":
                facts.check_rules()  # a change of rules queues every episode: count them in the bar
            total = facts.pending() if action == "refresh" else Episode.objects.count()
            with tqdm(total=total, unit="episode", desc=f"analytics {action}", disable=no_progress,
                      file=self.stderr._out, dynamic_ncols=True) as bar:
                if action == "refresh":
                    done = facts.refresh(progress=bar.update)
                else:
                    done = facts.rebuild_all(progress=bar.update)
        else:
            done = 0
        self.stdout.write(json.dumps({
            "action": action, "episodes_rebuilt": done, "seconds": round(time.perf_counter() - started, 3),
            "treated_episodes": EpisodeFact.objects.count(), "outcomes": OutcomeFact.objects.count(),
            "pending": facts.pending()}))
