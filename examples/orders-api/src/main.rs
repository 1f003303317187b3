//! `orders-api`: run the example API. `orders-api --issuer URL --introspect URL --client-id ID
//! --client-secret SECRET [--audience A] [--bug NAME…] [--listen ADDR]`.

fn main() -> anyhow::Result<()> {
    let config = orders_api::Config::from_args(std::env::args().skip(1))?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let server = orders_api::start(config).await?;
        println!("orders-api listening on http://{}", server.addr);
        server.task.await?;
        Ok(())
    })
}
