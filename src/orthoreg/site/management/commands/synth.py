"""orthoreg synth --patients N [--seed S] [--clinic CODE ...] [--batch B] [--writers W]"""

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from orthoreg.analytics import facts
from orthoreg.registry.models import Clinic
from orthoreg.site.synth import Generator


class Command(BaseCommand):
    help = "Generate a synthetic registry (deterministic for a seed), streamed in batches with a progress bar."

    def add_arguments(self, parser):
        parser.add_argument("--patients", type=int, required=True)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--clinic", action="append", default=[], metavar="CODE",
                            help="clinic code (created when missing); repeat for several; default synth-a, synth-b")
        parser.add_argument("--batch", type=int, default=5000,
                            help="patients written per transaction (peak memory about 420 MB at 5,000 with 2 writers)")
        parser.add_argument("--writers", type=int, default=2,
                            help="PostgreSQL: connections writing batches side by side while the next is planned")
        parser.add_argument("--mrn-prefix", default="SYN")
        parser.add_argument("--no-responses", action="store_true", help="registry records only")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, patients, seed, clinic, batch, writers, mrn_prefix, no_responses, no_progress, **options):
        if patients < 1:
            raise CommandError("--patients must be at least 1", returncode=2)
        if writers < 1:
            raise CommandError("--writers must be at least 1", returncode=2)
        if batch < 1:
            raise CommandError("--batch must be at least 1", returncode=2)
        codes = clinic or ["synth-a", "synth-b"]
        clinics = [Clinic.objects.get_or_create(code=code, defaults={"name": f"Synthetic clinic {code}"})[0]
                   for code in codes]
        facts.refresh()  # what was queued before: the batches below build their own facts
        generator = Generator(clinics=clinics, seed=seed, mrn_prefix=mrn_prefix, with_responses=not no_responses,
                              build_facts=True)
        with tqdm(total=patients, unit="patient", desc="patients and their facts", disable=no_progress,
                  file=self.stderr._out, dynamic_ncols=True) as bar:
            stats = generator.run(patients, batch_size=batch, writers=writers, progress=bar.update)
        with tqdm(total=facts.pending(), unit="episode", desc="analytics facts", disable=no_progress,
                  file=self.stderr._out, dynamic_ncols=True) as bar:
            facts.refresh(progress=bar.update)  # the clinic counts when the rules changed, anything queued meanwhile
        self.stdout.write(self.style.SUCCESS(
            f"Created {stats.patients} patients, {stats.episodes} episodes, {stats.procedures} procedures "
            f"({stats.conversions} conversions to surgery), {stats.responses} responses, "
            f"{stats.adverse_events} adverse events; {stats.lost_to_follow_up} patients lost to follow-up."))
