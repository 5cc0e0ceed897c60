# Gradient-accounting figures (Sec. 4, App. A), one job each, all drawn from
# results/tables/gradients.parquet:
#   fig01  per-layer contribution of clean, noisy and all examples (primary run)
#   fig02  cosine of clean and noisy gradients, layer x epoch (primary run)
#   fig10  fig01 for every window of training (primary run)
#   fig11  clean vs noisy contribution across noise rates (all epochs)
#   fig12-14  fig01 per model x noise rate on CIFAR-10 / MNIST / SVHN (all epochs)


rule gradient_figure:
    input:
        paths.table("gradients"),
    output:
        report(
            paths.figure("{fig}", "png"),
            caption="../report/gradient_figure.rst",
            category="Gradient accounting",
        ),
        paths.figure("{fig}", "pdf"),
    log:
        "logs/figures/{fig}.log",
    wildcard_constraints:
        fig="fig01|fig02|fig10|fig11|fig12|fig13|fig14",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("gradient_figure"),
        runtime=job_runtime("gradient_figure"),
    params:
        figure=lambda wc: gradient_figure(wc).figure,
        selection=lambda wc: gradient_figure(wc).selection,
    script:
        "../scripts/figure.py"
