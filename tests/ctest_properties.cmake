# Properties of single gtest cases, which gtest_discover_tests defines only at build time; ctest
# reads this file after them (tests/CMakeLists.txt). A name that no longer exists is ignored.
#
# COST: about the seconds a case takes in its slower stage (the sanitizer one, or the release one
# for slow tests), so that ctest -j2 starts the longest cases first instead of ending on them.
# Measured on the 2-vCPU machine; give one to any case over ~5 s.
set_tests_properties(Training.HousePricesReachTheLeastSquaresOptimum PROPERTIES COST 25)
set_tests_properties(MnistJson.NpmMnistDigits PROPERTIES COST 15)
set_tests_properties(Idx.FashionMnistTrain PROPERTIES COST 6)
set_tests_properties(OptimStep.SgdFlushesASubnormalMomentumBuffer PROPERTIES COST 5)
set_tests_properties(BlasProducts.DoubleAgreeWithALongDoubleReference PROPERTIES COST 5)
set_tests_properties(MnistJson.DeeplyNestedValueIsRejectedWithoutRecursion PROPERTIES COST 5)
