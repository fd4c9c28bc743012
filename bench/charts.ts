export function renderCharts(): string[] { return []; }
