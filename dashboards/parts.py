"""What every farmctl dashboard shares: template variables, job annotations, links, panel shapes."""

from __future__ import annotations

from typing import TypeVar, cast

from grafana_foundation_sdk.builders import bargauge, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import expr as expression
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from dashboards.influxql import DATASOURCE, EXPRESSION_TYPE, InfluxQL, InfluxQuery

TAG = "farmctl"  # every dashboard's tag; the links between them list dashboards by it
FOLDER = "Print farm"  # the provider's folder (dashboards/provisioning/dashboards/farmctl.yaml)

# Filters shared by many queries. A variable's value is put into a regex, as Grafana does for a
# multi-value or "All" variable on InfluxDB: `/^$printer$/` becomes `/^(p1|p2)$/`.
PRINTERS = '"printer" =~ /^$printer$/'
FINISHED = '"outcome" =~ /^(completed|failed|cancelled)$/'  # a job point per state change: the ends


def variable(name: str, label: str, query: str, *, multi: bool = True) -> dash.QueryVariable:
    """A variable filled by an InfluxQL `SHOW TAG VALUES` query, refreshed with the time range."""
    var = (
        dash.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
    )
    if multi:
        everything = model.VariableOption(selected=True, text="All", value="$__all")
        var = var.multi(True).include_all(True).current(everything)
    return var


def group_variable() -> dash.QueryVariable:
    return variable("group", "Group", 'SHOW TAG VALUES FROM "printer" WITH KEY = "group"')


def printer_variable(*, multi: bool = True) -> dash.QueryVariable:
    """Printers of the chosen groups (the `group` variable comes first)."""
    query = 'SHOW TAG VALUES FROM "printer" WITH KEY = "printer" WHERE "group" =~ /^$group$/'
    return variable("printer", "Printer", query, multi=multi)


def member_variable() -> dash.QueryVariable:
    return variable("member", "Member", 'SHOW TAG VALUES FROM "job" WITH KEY = "owner"')


def material_variable() -> dash.QueryVariable:
    return variable("material", "Material", 'SHOW TAG VALUES FROM "job" WITH KEY = "material"')


def location_variable() -> dash.QueryVariable:
    return variable("location", "Location", 'SHOW TAG VALUES FROM "environment" WITH KEY = "location"')


class JobAnnotations(cogbuilder.Builder[model.AnnotationQuery]):
    """Each finished job as an annotation (its id, printer and outcome); `printers` limits them to the
    `printer` variable's printers."""

    def __init__(self, *, printers: bool = True) -> None:
        where = f"{FINISHED} AND {PRINTERS}" if printers else FINISHED
        self.query = f'SELECT "job_id", "printer", "outcome" FROM "job" WHERE {where} AND $timeFilter'

    def build(self) -> model.AnnotationQuery:
        annotation = dash.AnnotationQuery().name("Jobs").datasource(DATASOURCE).enable(True)
        built = annotation.icon_color("#8AB8FF").build()
        target = InfluxQuery(ref_id="Anno", query=self.query, text_column="job_id")
        target.tags_column = "printer,outcome"
        # The SDK types an annotation's target as Grafana's built-in one; an InfluxDB annotation's target
        # is an InfluxQL query (Grafana's InfluxDB datasource reads query, textColumn, tagsColumn).
        built.target = cast(model.AnnotationTarget, target)
        return built


def links() -> list[cogbuilder.Builder[model.DashboardLink]]:
    """A menu of the other farmctl dashboards, keeping the time range and the variables."""
    menu = (
        dash.DashboardLink("Farm dashboards")
        .type(model.DashboardLinkType.DASHBOARDS)
        .tags([TAG])
        .as_dropdown(True)
        .include_vars(True)
        .keep_time(True)
    )
    return [menu]


def to_printer() -> list[cogbuilder.Builder[model.DashboardLink]]:
    """A data link from a printer's series to its Printer dashboard, keeping the time range."""
    url = "/d/farmctl-printer?var-printer=${__field.labels.printer}&${__url_time_range}"
    return [
        dash.DashboardLink("Printer ${__field.labels.printer}").type(model.DashboardLinkType.LINK).url(url)
    ]


def board(uid: str, title: str, description: str) -> dash.Dashboard:
    """A dashboard with the farm's tag, links, a 6-hour default range and a minute's refresh."""
    return (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .editable()
        .time("now-6h", "now")
        .refresh("1m")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .links(links())
    )


P = TypeVar("P", timeseries.Panel, stat.Panel, table.Panel, statetimeline.Panel, bargauge.Panel)


def _place(panel: P, pid: int, title: str, about: str, w: int, h: int) -> P:
    return panel.id(pid).title(title).description(about).datasource(DATASOURCE).span(w).height(h)


def series(pid: int, title: str, about: str, *queries: InfluxQL, unit: str, w: int = 12) -> timeseries.Panel:
    """Lines over time, one per series."""
    panel = timeseries.Panel().unit(unit).span_nulls(True)
    for query in queries:
        panel = panel.with_target(query)
    return _place(panel, pid, title, about, w, 8)


def bars(pid: int, title: str, about: str, *queries: InfluxQL, unit: str, w: int = 12) -> timeseries.Panel:
    """Values per time bucket (a day, an interval) as stacked bars."""
    panel = (
        timeseries.Panel()
        .unit(unit)
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(80)
        .stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    )
    for query in queries:
        panel = panel.with_target(query)
    return _place(panel, pid, title, about, w, 8)


def _last() -> common_builders.ReduceDataOptions:
    """Show each series' last value (a stat's or bar gauge's default calculation, written out)."""
    return common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def number(pid: int, title: str, about: str, query: InfluxQL, *, unit: str, w: int = 4) -> stat.Panel:
    """Big numbers: the last value of each series or field."""
    panel = stat.Panel().unit(unit).graph_mode(common.BigValueGraphMode.NONE).reduce_options(_last())
    panel = panel.with_target(query)
    return _place(panel, pid, title, about, w, 4)


def rows(pid: int, title: str, about: str, query: InfluxQL, *, w: int = 24, h: int = 10) -> table.Panel:
    """A table of the query's rows."""
    panel = table.Panel().with_target(query.table()).filterable(True)
    return _place(panel, pid, title, about, w, h)


def states(pid: int, title: str, about: str, query: InfluxQL, *, w: int = 24) -> statetimeline.Panel:
    """State strings over time, one row per printer, each state its own colour."""
    colours = {
        "printing": "green",
        "paused": "yellow",
        "awaiting_clear": "orange",
        "idle": "blue",
        "offline": "red",
        "error": "dark-red",
        "off": "text",
        "unknown": "transparent",
    }
    options = {
        name: model.ValueMappingResult(color=colour, index=i)
        for i, (name, colour) in enumerate(colours.items())
    }
    mapping = model.ValueMap(options=options)
    panel = statetimeline.Panel().with_target(query).mappings([mapping]).merge_values(True).line_width(0)
    panel = panel.fill_opacity(70).show_value(common.VisibilityMode.AUTO)
    return _place(panel, pid, title, about, w, 8)


Target = cogbuilder.Builder[InfluxQuery] | expression.TypeMath  # a query or an expression over queries


def gauges(pid: int, title: str, about: str, *targets: Target, unit: str, w: int = 12) -> bargauge.Panel:
    """One bar per series (per printer, say); targets may be expressions over hidden queries."""
    panel = bargauge.Panel().unit(unit).min(0).orientation(common.VizOrientation.HORIZONTAL)
    panel = panel.reduce_options(_last())
    for target in targets:
        panel = panel.with_target(target)
    return _place(panel, pid, title, about, w, 8)


def math(ref_id: str, formula: str) -> expression.TypeMath:
    """A server-side expression over other targets of the panel (`$A / $B`), joined on their tags."""
    expr_source = model.DataSourceRef(type_val=EXPRESSION_TYPE, uid=EXPRESSION_TYPE)
    return expression.TypeMath().ref_id(ref_id).expression(formula).datasource(expr_source)
