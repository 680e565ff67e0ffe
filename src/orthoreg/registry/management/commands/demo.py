"""orthoreg demo [--no-serve] [--port N]: data directory, migrations, demo data once, users, then serve."""

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from tqdm import tqdm

from orthoreg.registry import demo


class Command(BaseCommand):
    help = "Set up the demo (SQLite in the data directory by default) and serve it on 127.0.0.1."

    def add_arguments(self, parser):
        parser.add_argument("--no-serve", action="store_true", help="set up, print the logins and stop")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--host", default="127.0.0.1")

    def handle(self, *args, no_serve, port, host, **options):
        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        self.stdout.write(f"Data directory: {settings.DATA_DIR}")
        call_command("migrate", interactive=False, verbosity=0)
        if demo.is_loaded():
            self.stdout.write("Demo data already loaded: nothing changed.")
        else:
            self.stdout.write("Loading demo data: the founding patient DF and a synthetic cohort ...")
            with tqdm(total=demo.COHORT_PATIENTS, unit="patient", file=self.stderr._out) as bar:
                demo.load(progress=bar.update)
        password = demo.demo_password()
        demo.ensure_users(password)
        url = f"http://{host}:{port}/"
        self.stdout.write(self.style.SUCCESS(f"\northoreg demo ready at {url}"))
        self.stdout.write("Logins (all with the same password):")
        for username, role, _ in demo.DEMO_USERS:
            self.stdout.write(f"  {username:<12} {role}")
        self.stdout.write(f"Password: {password}")
        code = demo.admin_enrolment_code()
        if code:
            self.stdout.write(f"'admin' must set up two-factor sign-in: its one-time enrolment code is {code}.")
        self.stdout.write("Try: sign in as 'clinician' and search for DF.\n")
        self.stdout.flush()
        if not no_serve:
            call_command("serve", host=host, port=port)
