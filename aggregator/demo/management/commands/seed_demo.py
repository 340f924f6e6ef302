import contextlib
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from aggregator.aggregation import services as aggregation
from aggregator.core.access.roles import ensure_role_groups, grant
from aggregator.core.errors import DomainError
from aggregator.demo import market, story
from aggregator.demo.fleet import fleet_csv
from aggregator.demo.management.commands.demo_login import (
    DEMO_CUSTOMER,
    DEMO_USERNAME,
    customer_password_file,
    password_file,
)
from aggregator.reference.models import Market, Program
from enrollment import services
from enrollment.fleet_import import import_fleet
from enrollment.models import Consent, Customer, CustomerLogin, Device
from settlement.models import SiteSettlement

DEMO_PROGRAMS = (
    ("CAISO", "caiso-pdr", "CAISO Proxy Demand Resource", Program.Service.ENERGY),
    ("PJM", "pjm-capacity-dr", "PJM Capacity Performance demand resource", Program.Service.CAPACITY),
)


class Command(BaseCommand):
    help = "Seed the demo: a demo operator, two programs and a fleet across CAISO and PJM. Runs once; safe to repeat."

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=300)

    def handle(self, *args, customers, **options):
        ensure_role_groups()
        operator = self._operator()
        if Customer.objects.filter(external_ref__startswith="DEMO-").exists():
            self.stdout.write("Demo fleet already seeded.")
            self._market(operator)
            return
        with transaction.atomic():
            programs = self._programs()
            report = import_fleet(source=fleet_csv(customers=customers))
            if not report.ok:
                raise CommandError(f"Demo fleet did not import: {report.errors[:5]}")
            self._consents(programs, operator)
            counts = self._enroll(programs, operator)
            resources = self._aggregate(programs, operator)
        self.stdout.write(
            f"Seeded demo fleet: {report.summary()} Enrollments: {counts}. Virtual resources: {resources}."
        )

        made = story.seed(programs=programs, by=operator)
        self.stdout.write(
            f"Seeded the story: {made.get('readings', 0):,} hourly readings over {story.HISTORY_DAYS} days; "
            f"past event {made.get('past_event')} settled (run {made.get('settlement_run')}); "
            f"upcoming event {made.get('upcoming_event')}; device tokens in {made['tokens']}."
        )
        self._customer_login()
        self._market(operator)
        services.recount_fleet()  # the fleet page and the map at once, not at beat's first count

    def _market(self, operator) -> None:
        made = market.seed(by=operator)
        self.stdout.write(
            f"Seeded the market: {made['market']} through the market simulator at {market.simulator_url()}, "
            f"{len(made['resources'])} registered resource(s), {made['forecasts']} forecast(s) made; its credentials in "
            f"{made['credentials']}."
        )

    def _customer_login(self) -> None:
        """A portal login for a demo customer with a battery, one of the settled event's if there is one."""

        User = get_user_model()
        if User.objects.filter(username=DEMO_CUSTOMER).exists():
            return
        with_battery = Customer.objects.filter(
            external_ref__startswith="DEMO-", sites__devices__device_type="battery"
        ).order_by("pk")
        customer = (
            with_battery.filter(pk__in=SiteSettlement.objects.values("customer_id")).first() or with_battery.first()
        )
        if customer is None:
            return
        password = secrets.token_urlsafe(12)
        path = customer_password_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(password)
        path.chmod(0o600)
        CustomerLogin.objects.create(
            user=User.objects.create_user(username=DEMO_CUSTOMER, password=password), customer=customer
        )

    def _aggregate(self, programs, operator) -> list[str]:
        """One virtual resource per zone, submitted to the market where it is big enough."""

        names = []
        for program in programs:
            proposal = aggregation.build_proposal(market=program.market, program=program, by=operator)
            for resource in aggregation.accept_proposal(proposal=proposal, by=operator):
                with contextlib.suppress(DomainError):  # a refused one stays a draft; the console shows its shortfall
                    aggregation.transition(resource=resource, action="submit", by=operator)
                names.append(str(resource))
        return names

    def _operator(self):
        User = get_user_model()
        user = User.objects.filter(username=DEMO_USERNAME).first()
        path = password_file()
        if user is None or not path.exists():
            password = secrets.token_urlsafe(12)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(password)
            path.chmod(0o600)
            if user is None:
                user = User.objects.create_user(
                    username=DEMO_USERNAME, password=password, is_staff=True, is_superuser=True
                )
            else:
                user.set_password(password)
                user.save()
            grant(user, "admin")
        return user

    def _programs(self) -> list[Program]:
        programs = []
        for market_code, code, name, service in DEMO_PROGRAMS:
            program, _ = Program.objects.get_or_create(
                market=Market.objects.get(code=market_code),
                code=code,
                defaults={
                    "name": name,
                    "service": service,
                    "terms_version": "2026.1",
                    "excluded_retail_programs": ["utility_dr"],
                    # The demo market's offers go in on their own, so the market chain runs without a hand on it.
                    "auto_submit_offers": market_code == market.DEMO_MARKET,
                },
            )
            programs.append(program)
        return programs

    def _consents(self, programs, operator) -> None:
        now = timezone.now()
        rows = []
        by_market = {p.market.code: p for p in programs}
        markets = dict(
            Customer.objects.filter(external_ref__startswith="DEMO-")
            .values_list("pk", "sites__market__code")
            .distinct()
        )
        for customer in Customer.objects.filter(pk__in=markets):
            program = by_market[markets[customer.pk]]
            common = {
                "customer": customer,
                "granted_at": now,
                "granted_by": customer.name,
                "method": Consent.Method.WEB,
                "recorded_by": operator,
            }
            rows.append(
                Consent(kind=Consent.Kind.PROGRAM_TERMS, program=program, terms_version=program.terms_version, **common)
            )
            rows.append(Consent(kind=Consent.Kind.UTILITY_DATA_SHARING, terms_version="2026.1", **common))
        Consent.objects.bulk_create(rows)

    def _enroll(self, programs, operator) -> dict[str, int]:
        """Most devices are active; every tenth waits in utility review; sites in a
        utility DR program are turned away by the double-counting rule."""
        counts = {"active": 0, "utility_review": 0, "not_eligible": 0}
        for program in programs:
            device_ids = list(
                Device.objects.filter(site__customer__external_ref__startswith="DEMO-", site__market=program.market)
                .order_by("id")
                .values_list("id", flat=True)
            )
            applied = services.bulk_apply(device_ids=device_ids, program=program, by=operator)
            counts["not_eligible"] += len(applied.refused)
            ids = [e.pk for e in applied.done]
            services.bulk_transition(enrollment_ids=ids, action="submit_for_review", by=operator)
            waiting = set(ids[9::10])
            approved = [i for i in ids if i not in waiting]
            services.bulk_transition(
                enrollment_ids=approved, action="approve", by=operator, utility_reference="UR-DEMO"
            )
            counts["active"] += len(
                services.bulk_transition(enrollment_ids=approved, action="activate", by=operator).done
            )
            counts["utility_review"] += len(waiting)
        return counts
