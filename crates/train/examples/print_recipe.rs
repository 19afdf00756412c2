//! Loads a PaddleDetection config (with its `_BASE_` files and `-o`-style overrides given after
//! the path) and prints the training recipe and the detector settings it gives.

use ringdet_train::{Config, TrainRecipe};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: print_recipe CONFIG.yml [key=value ...]")?;
    let overrides: Vec<String> = args.collect();
    let mut config = Config::load(path.as_ref())?;
    config.apply_overrides(&overrides)?;
    let recipe = TrainRecipe::from_config(&config)?;
    println!("{recipe:#?}");
    println!(
        "LR schedule at 1000 iterations per epoch: {:?}",
        recipe.lr_schedule(1000)?
    );
    Ok(())
}
