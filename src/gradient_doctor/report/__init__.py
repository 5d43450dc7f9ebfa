"""Presentation: terminal views now; HTML, plots and TensorBoard later. Measurement never lives here."""
