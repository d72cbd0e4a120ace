/** What the metrics tests share: reading one series from the Prometheus text exposition. */

/** The value of `series` (its name and labels, exactly as exposed) in `text`, or `undefined` if absent. */
export function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}
