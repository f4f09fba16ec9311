// Panel helpers over the Grafana Foundation SDK builders: every panel and target of the
// skewscope dashboards reads the `${datasource}` Prometheus variable, and the panels of
// one kind share one look (legend table, multi tooltip, thresholds as lines).

import * as bargauge from "@grafana/grafana-foundation-sdk/bargauge";
import * as common from "@grafana/grafana-foundation-sdk/common";
import * as dashboard from "@grafana/grafana-foundation-sdk/dashboard";
import * as heatmap from "@grafana/grafana-foundation-sdk/heatmap";
import * as prometheus from "@grafana/grafana-foundation-sdk/prometheus";
import * as stat from "@grafana/grafana-foundation-sdk/stat";
import * as statetimeline from "@grafana/grafana-foundation-sdk/statetimeline";
import * as timeseries from "@grafana/grafana-foundation-sdk/timeseries";

/** The data source of every panel, target and variable: the dashboard's own variable. */
export const DATASOURCE: common.DataSourceRef = { type: "prometheus", uid: "${datasource}" };

/** Label matchers of the template variables. */
export const INSTANCE = 'instance=~"$instance"';
export const DEVICE = 'device=~"$device"';
export const PORT = 'port=~"$port"';

/** The labels that identify one reuseport group (and the scrape) on every group series. */
export const GROUP_LABELS = "job, instance, protocol, address, port, netns";
/** The labels that identify one device's series. */
export const DEVICE_LABELS = "job, instance, device";

/** `metric{m1,m2,…}`. */
export function sel(metric: string, ...matchers: string[]): string {
  return `${metric}{${matchers.join(",")}}`;
}

/** `part / whole` per `labels`: each series' share of its group's sum. */
export function share(selector: string, labels: string): string {
  return `${selector} / on (${labels}) group_left sum by (${labels}) (${selector})`;
}

export interface Target {
  expr: string;
  legend: string;
}

/** Threshold steps as (color, value) pairs; the first value is null (the base). */
export type Steps = ReadonlyArray<readonly [string, number | null]>;

const BASE_STEPS: Steps = [["green", null]];

function thresholds(steps: Steps): dashboard.ThresholdsConfigBuilder {
  return new dashboard.ThresholdsConfigBuilder()
    .mode(dashboard.ThresholdsMode.Absolute)
    .steps(steps.map(([color, value]) => ({ color, value })));
}

function color(mode: dashboard.FieldColorModeId): dashboard.FieldColorBuilder {
  return new dashboard.FieldColorBuilder().mode(mode);
}

const REF_IDS = "ABCDEFGH";

/** Range queries (graphs), refIds A, B, … in order. */
function rangeTargets(targets: Target[]): prometheus.DataqueryBuilder[] {
  return targets.map((t, i) =>
    new prometheus.DataqueryBuilder()
      .datasource(DATASOURCE)
      .refId(REF_IDS.charAt(i))
      .expr(t.expr)
      .legendFormat(t.legend)
      .range(),
  );
}

/** Instant queries (bars of the latest value), refIds A, B, … in order. */
function instantTargets(targets: Target[]): prometheus.DataqueryBuilder[] {
  return targets.map((t, i) =>
    new prometheus.DataqueryBuilder()
      .datasource(DATASOURCE)
      .refId(REF_IDS.charAt(i))
      .expr(t.expr)
      .legendFormat(t.legend)
      .instant(),
  );
}

/** What every panel has. */
export interface PanelSpec {
  id: number;
  title: string;
  description: string;
  /** Grid width (of 24) and height. */
  w: number;
  h: number;
  targets: Target[];
}

export interface TimeseriesSpec extends PanelSpec {
  unit: string;
  min?: number;
  max?: number;
  /** Drawn as lines when there are steps beyond the base. */
  steps?: Steps;
  stacked?: boolean;
}

export function timeseriesPanel(s: TimeseriesSpec): timeseries.PanelBuilder {
  const steps = s.steps ?? BASE_STEPS;
  const p = new timeseries.PanelBuilder()
    .id(s.id)
    .title(s.title)
    .description(s.description)
    .datasource(DATASOURCE)
    .span(s.w)
    .height(s.h)
    .unit(s.unit)
    .thresholds(thresholds(steps))
    .colorScheme(color(dashboard.FieldColorModeId.PaletteClassic))
    .drawStyle(common.GraphDrawStyle.Line)
    .lineWidth(1)
    .fillOpacity(10)
    .showPoints(common.VisibilityMode.Never)
    .spanNulls(false)
    .thresholdsStyle(
      new common.GraphThresholdsStyleConfigBuilder().mode(
        steps.length > 1 ? common.GraphThresholdsStyleMode.Line : common.GraphThresholdsStyleMode.Off,
      ),
    )
    .legend(
      new common.VizLegendOptionsBuilder()
        .showLegend(true)
        .displayMode(common.LegendDisplayMode.Table)
        .placement(common.LegendPlacement.Bottom)
        .calcs(["lastNotNull", "max"]),
    )
    .tooltip(
      new common.VizTooltipOptionsBuilder()
        .mode(common.TooltipDisplayMode.Multi)
        .sort(common.SortOrder.Descending),
    )
    .targets(rangeTargets(s.targets));
  if (s.min !== undefined) p.min(s.min);
  if (s.max !== undefined) p.max(s.max);
  if (s.stacked) {
    p.stacking(new common.StackingConfigBuilder().mode(common.StackingMode.Normal).group("A"));
  }
  return p;
}

/** Value -> (text, color) of a state timeline or stat. */
export type States = ReadonlyArray<readonly [string, string]>;

function stateMappings(states: States): dashboard.ValueMapping[] {
  const options: Record<string, dashboard.ValueMappingResult> = {};
  states.forEach(([text, c], index) => {
    options[String(index)] = { text, color: c, index };
  });
  return [{ type: dashboard.MappingType.ValueToText, options }];
}

/** A state timeline of a 0..N-1 code, mapped to `states` (index = value). */
export function stateTimelinePanel(s: PanelSpec & { states: States }): statetimeline.PanelBuilder {
  return new statetimeline.PanelBuilder()
    .id(s.id)
    .title(s.title)
    .description(s.description)
    .datasource(DATASOURCE)
    .span(s.w)
    .height(s.h)
    .mappings(stateMappings(s.states))
    .thresholds(thresholds(BASE_STEPS))
    .colorScheme(color(dashboard.FieldColorModeId.Thresholds))
    .showValue(common.VisibilityMode.Auto)
    .mergeValues(true)
    .rowHeight(0.9)
    .legend(new common.VizLegendOptionsBuilder().showLegend(false))
    .targets(rangeTargets(s.targets));
}

export interface StatSpec extends PanelSpec {
  unit: string;
  steps: Steps;
  min?: number;
  max?: number;
  states?: States;
}

export function statPanel(s: StatSpec): stat.PanelBuilder {
  const p = new stat.PanelBuilder()
    .id(s.id)
    .title(s.title)
    .description(s.description)
    .datasource(DATASOURCE)
    .span(s.w)
    .height(s.h)
    .unit(s.unit)
    .thresholds(thresholds(s.steps))
    .colorScheme(color(dashboard.FieldColorModeId.Thresholds))
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(["lastNotNull"]).fields("").values(false))
    .colorMode(common.BigValueColorMode.Background)
    .graphMode(common.BigValueGraphMode.Area)
    .textMode(common.BigValueTextMode.ValueAndName)
    .orientation(common.VizOrientation.Auto)
    .justifyMode(common.BigValueJustifyMode.Auto)
    .targets(rangeTargets(s.targets));
  if (s.min !== undefined) p.min(s.min);
  if (s.max !== undefined) p.max(s.max);
  if (s.states) p.mappings(stateMappings(s.states));
  return p;
}

export interface BarGaugeSpec extends PanelSpec {
  unit: string;
  min: number;
  max: number;
  /** Threshold colors; without them a continuous green-yellow-red scale over min..max. */
  steps?: Steps;
}

/** Horizontal bars of each series' latest value: the largest bar is the hot one. */
export function barGaugePanel(s: BarGaugeSpec): bargauge.PanelBuilder {
  return new bargauge.PanelBuilder()
    .id(s.id)
    .title(s.title)
    .description(s.description)
    .datasource(DATASOURCE)
    .span(s.w)
    .height(s.h)
    .unit(s.unit)
    .min(s.min)
    .max(s.max)
    .thresholds(thresholds(s.steps ?? BASE_STEPS))
    .colorScheme(
      color(s.steps ? dashboard.FieldColorModeId.Thresholds : dashboard.FieldColorModeId.ContinuousGrYlRd),
    )
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(["lastNotNull"]).fields("").values(false))
    .displayMode(common.BarGaugeDisplayMode.Gradient)
    .valueMode(common.BarGaugeValueMode.Color)
    .namePlacement(common.BarGaugeNamePlacement.Left)
    .showUnfilled(true)
    .sizing(common.BarGaugeSizing.Auto)
    .orientation(common.VizOrientation.Horizontal)
    .targets(instantTargets(s.targets));
}

export interface HeatmapSpec extends PanelSpec {
  /** Unit of the cells' values. */
  unit: string;
}

/** One row per series (its legend), one cell per time step colored by the value: the
 * series are shown as they are (calculate off), so a hot queue or listener is a bright
 * row. */
export function heatmapPanel(s: HeatmapSpec): heatmap.PanelBuilder {
  return new heatmap.PanelBuilder()
    .id(s.id)
    .title(s.title)
    .description(s.description)
    .datasource(DATASOURCE)
    .span(s.w)
    .height(s.h)
    .calculate(false)
    .rowsFrame(new heatmap.RowsHeatmapOptionsBuilder().layout(common.HeatmapCellLayout.Unknown))
    .color(
      new heatmap.HeatmapColorOptionsBuilder()
        .mode(heatmap.HeatmapColorMode.Scheme)
        .scheme("Oranges")
        .fill("dark-orange")
        .scale(heatmap.HeatmapColorScale.Exponential)
        .exponent(0.5)
        .steps(64)
        .reverse(false),
    )
    .cellValues(new heatmap.CellValuesBuilder().unit(s.unit))
    .yAxis(new heatmap.YAxisConfigBuilder().axisPlacement(common.AxisPlacement.Left))
    .showValue(common.VisibilityMode.Never)
    .cellGap(1)
    .showLegend()
    .tooltip(new heatmap.HeatmapTooltipBuilder().mode(common.TooltipDisplayMode.Single).yHistogram(false))
    .targets(rangeTargets(s.targets));
}

export function row(id: number, title: string): dashboard.RowBuilder {
  return new dashboard.RowBuilder(title).id(id).datasource(DATASOURCE);
}

/** A multi-select query variable over `label_values(selector, label)`, "All" = `.*`. */
export function labelValuesVariable(
  name: string,
  label: string,
  selector: string,
  valueLabel: string,
): dashboard.QueryVariableBuilder {
  const query = `label_values(${selector}, ${valueLabel})`;
  return new dashboard.QueryVariableBuilder(name)
    .label(label)
    .datasource(DATASOURCE)
    .query({ query, refId: "PrometheusVariableQueryEditor-VariableQuery" })
    .definition(query)
    .refresh(dashboard.VariableRefresh.OnTimeRangeChanged)
    .sort(dashboard.VariableSort.AlphabeticalAsc)
    .multi(true)
    .includeAll(true)
    .allValue(".*")
    .current({ selected: true, text: ["All"], value: ["$__all"] })
    .hide(dashboard.VariableHide.DontHide)
    .regex("");
}
