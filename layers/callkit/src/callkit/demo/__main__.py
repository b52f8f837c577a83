from callkit.demo import main

main()
