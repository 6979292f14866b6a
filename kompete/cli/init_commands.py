"""`kompete init NAME --images DIR`: a competition YAML for any image folder."""

from __future__ import annotations

from pathlib import Path

import click

from kompete.cli.main import main


@main.command("init")
@click.argument("name")
@click.option("--images", "images", required=True, metavar="DIR", type=click.Path(path_type=Path),
              help="Folder of images, flat (one class) or in class sub-folders (the labels).")
@click.option("--image-size", type=click.IntRange(8, 1024), default=64,
              help="Side of the training and the submitted images.")
@click.option("--count", type=click.IntRange(min=1), default=10000,
              help="Images a submission holds (output.n_min = n_max = generate.n_images).")
@click.option("--format", "fmt", type=click.Choice(["png", "jpg"]), default="png", help="Image format in the zip.")
@click.option("--metric", type=click.Choice(["fid", "mifid"]), default="fid", show_default=True,
              help="The leaderboard metric: fid (plain FID, pytorch-fid's input path) or mifid (Kaggle's).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("competitions"),
              help="Folder the YAML is written into.")
@click.option("--dry-run", is_flag=True, help="Print the YAML instead of writing it.")
@click.option("--force", is_flag=True, help="Replace an existing YAML of that name.")
def init(name: str, images: Path, image_size: int, count: int, fmt: str, metric: str, out: Path,
         dry_run: bool, force: bool) -> None:
    """Write OUT/NAME.yaml for a generation competition over the images in DIR.

    The classes (sub-folders), their counts and the image sizes found go into the YAML as comments;
    the YAML is checked by the same loader every command uses before it is written.

    \b
      kompete init masked-faces --images data/faces --count 5000
      kompete data masked-faces
      kompete train masked-faces --time-budget 30m
    """
    from kompete.init import describe, init_competition

    result = init_competition(name, images, image_size=image_size, count=count, fmt=fmt, metric=metric,
                              out=out, dry_run=dry_run, force=force)
    if dry_run:
        click.echo(result.text.rstrip())
    click.echo("\n".join(describe(result)), err=dry_run)
