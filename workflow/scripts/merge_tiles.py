from smdown.jobs import merge_tiles, setup_logging

setup_logging(snakemake.log[0])
# the written maps (rule merge_tiles) name their dtype and the COG layout; the other merges keep the tiles' float32
params = dict(snakemake.params.items())
merge_tiles(list(snakemake.input), snakemake.output[0], dtype=params.get("dtype", "float32"), cog=params.get("cog", False),
            days=params.get("days"), threads=snakemake.threads)
