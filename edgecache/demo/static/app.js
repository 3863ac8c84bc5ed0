// Live stock check for the edgecache demo storefront.
//
// A cached page may show an older availability than the inventory service. Clicking a
// buy button fetches the SKU's current truth from /api/sku/<sku> and shows both, so the
// difference between the page and the truth is visible.
"use strict";

async function showLiveStock(button) {
  const live = button.parentElement.querySelector(".live");
  const sku = button.dataset.sku;
  try {
    const response = await fetch(`/api/sku/${encodeURIComponent(sku)}`, { cache: "no-store" });
    if (!response.ok) {
      throw new Error(`GET /api/sku/${sku} failed with status ${response.status}`);
    }
    const truth = await response.json();
    live.textContent =
      `Live: ${truth.state} (${truth.available_quantity} units, version ${truth.version}). ` +
      `Page shows: ${button.dataset.availability}.`;
  } catch (error) {
    live.textContent = `Live stock check failed: ${error.message}`;
  }
  live.hidden = false;
}

document.querySelectorAll("button.buy[data-sku]").forEach((button) => {
  button.addEventListener("click", () => showLiveStock(button));
});
