//! Small SVG line charts (training loss, evaluation accuracy).

use leptos::prelude::*;

/// A line chart of (x, y) points with its y range printed.
#[component]
pub fn LineChart(
    title: &'static str,
    id: &'static str,
    points: Signal<Vec<(f64, f64)>>,
    #[prop(optional)] y_unit_range: bool,
) -> impl IntoView {
    const W: f64 = 320.0;
    const H: f64 = 140.0;
    const PAD: f64 = 24.0;
    view! {
        <figure class="chart" id=id>
            <figcaption>{title}</figcaption>
            {move || {
                let pts = points.get();
                if pts.is_empty() {
                    return view! { <p class="muted">"No data yet."</p> }.into_any();
                }
                let (x0, x1) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
                let (mut y0, mut y1) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
                if y_unit_range {
                    y0 = y0.clamp(0.0, 0.5);
                    y1 = 1.0;
                }
                if (y1 - y0).abs() < 1e-12 {
                    y1 = y0 + 1.0;
                }
                let sx = |x: f64| PAD + if x1 > x0 { (x - x0) / (x1 - x0) * (W - 2.0 * PAD) } else { (W - 2.0 * PAD) / 2.0 };
                let sy = |y: f64| H - PAD - (y - y0) / (y1 - y0) * (H - 2.0 * PAD);
                let line: String = pts.iter().map(|p| format!("{:.1},{:.1}", sx(p.0), sy(p.1))).collect::<Vec<_>>().join(" ");
                let last = pts[pts.len() - 1];
                view! {
                    <svg viewBox=format!("0 0 {W} {H}") role="img" aria-label=title data-points=pts.len().to_string()>
                        <line x1=PAD y1=H - PAD x2=W - PAD y2=H - PAD class="axis" />
                        <line x1=PAD y1=PAD x2=PAD y2=H - PAD class="axis" />
                        <text x="2" y=PAD + 4.0 class="tick">{format!("{y1:.2}")}</text>
                        <text x="2" y=H - PAD class="tick">{format!("{y0:.2}")}</text>
                        <polyline points=line class="series" />
                        {pts.iter().map(|p| view! { <circle cx=sx(p.0) cy=sy(p.1) r="2.5" class="dot" /> }).collect_view()}
                        <text x=W - PAD y=H - 6.0 class="tick" text-anchor="end">{format!("last {:.4}", last.1)}</text>
                    </svg>
                }.into_any()
            }}
        </figure>
    }
}
