// A dependency-free SVG of the training curves: loss (train and validation) and the validation
// metric at every evaluation point, two panels side by side, readable in any browser.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "lathe/train.h"

namespace lathe {
namespace {

struct Series {
  std::string label;
  std::string color;
  std::vector<std::pair<double, double>> points;
};

constexpr double kPanelWidth = 420, kPanelHeight = 300, kMargin = 50;

std::string panel(const std::string& title, const std::vector<Series>& series, double x_offset,
                  const char* x_label) {
  double x_min = 1e300, x_max = -1e300, y_min = 1e300, y_max = -1e300;
  for (const auto& s : series)
    for (auto [x, y] : s.points) {
      x_min = std::min(x_min, x);
      x_max = std::max(x_max, x);
      y_min = std::min(y_min, y);
      y_max = std::max(y_max, y);
    }
  if (x_min > x_max) x_min = 0, x_max = 1, y_min = 0, y_max = 1;
  if (x_max == x_min) x_max = x_min + 1;
  if (y_max == y_min) y_max = y_min + 1;
  const double pad = 0.05 * (y_max - y_min);
  y_min -= pad;
  y_max += pad;
  const double plot_w = kPanelWidth - 2 * kMargin, plot_h = kPanelHeight - 2 * kMargin;
  const auto sx = [&](double x) {
    return x_offset + kMargin + (x - x_min) / (x_max - x_min) * plot_w;
  };
  const auto sy = [&](double y) { return kMargin + (1 - (y - y_min) / (y_max - y_min)) * plot_h; };

  std::string svg = fmt::format(
      "<text x=\"{}\" y=\"25\" font-size=\"15\" text-anchor=\"middle\">{}</text>\n"
      "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888\"/>\n",
      x_offset + kPanelWidth / 2, title, x_offset + kMargin, kMargin, plot_w, plot_h);
  for (int i = 0; i <= 4; ++i) {  // y ticks
    const double y = y_min + (y_max - y_min) * i / 4;
    svg +=
        fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{:.4g}</text>\n",
                    x_offset + kMargin - 4, sy(y) + 3, y);
  }
  svg += fmt::format(
      "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{:g}</text>\n"
      "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{:g}</text>\n"
      "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{}</text>\n",
      sx(x_min), kMargin + plot_h + 14, x_min, sx(x_max), kMargin + plot_h + 14, x_max,
      x_offset + kPanelWidth / 2, kMargin + plot_h + 30, x_label);
  double legend_y = kMargin + 14;
  for (const auto& s : series) {
    if (s.points.empty()) continue;
    std::string path;
    for (auto [x, y] : s.points) path += fmt::format("{:.1f},{:.1f} ", sx(x), sy(y));
    svg += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>\n",
                       s.color, path);
    for (auto [x, y] : s.points)
      svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.5\" fill=\"{}\"/>\n", sx(x),
                         sy(y), s.color);
    svg += fmt::format(
        "<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"{}\" text-anchor=\"end\">{}</text>\n",
        x_offset + kMargin + plot_w - 6, legend_y, s.color, s.label);
    legend_y += 14;
  }
  return svg;
}

}  // namespace

std::string render_training_curves(const std::vector<TrainingRecord>& history, Task task) {
  // Runs that count iterations record a point every eval_every steps (and at step 0): plot
  // against steps. Epoch runs record one point per epoch.
  const bool by_step = !history.empty() && history.front().step == 0;
  const char* metric_title = task == Task::Regression      ? "Validation RMSE"
                             : task == Task::LanguageModel ? "Validation next-token accuracy (%)"
                                                           : "Validation accuracy (%)";
  Series train{"train loss", "#1f77b4", {}}, validation{"validation loss", "#d62728", {}};
  Series metric{metric_title, "#2ca02c", {}};
  for (const TrainingRecord& r : history) {
    const auto x = static_cast<double>(by_step ? r.step : r.epoch);
    if (!std::isnan(r.train_loss)) train.points.emplace_back(x, r.train_loss);
    if (!r.has_validation) continue;
    validation.points.emplace_back(x, r.validation.loss);
    metric.points.emplace_back(
        x, task == Task::Regression ? r.validation.rmse : 100 * r.validation.accuracy);
  }
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      2 * kPanelWidth, kPanelHeight);
  const char* x_label = by_step ? "step" : "epoch";
  svg += panel("Loss", {train, validation}, 0, x_label);
  svg += panel(metric_title, {metric}, kPanelWidth, x_label);
  return svg + "</svg>\n";
}

}  // namespace lathe
